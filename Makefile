# Two commands set everything up and run it:
#   make serve   the sync server (with devtools) on an embedded SQLite database
#   make test    the whole test suite, including the JS interop tests
# and one shows the same todo list in a browser:
#   make web     the web example (examples/web) on http://127.0.0.1:5173
.PHONY: serve test deps bench compare web

LIVESTORE_TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
export LIVESTORE_TEST_POSTGRES_URL

serve:
	go run ./cmd/livestore serve

# npm ci in directory $(1) when its node_modules is missing or older than its lock file.
npm_ci = if [ -f $(1)/package-lock.json ]; then \
		if [ ! -d $(1)/node_modules ] || [ $(1)/package-lock.json -nt $(1)/node_modules ]; then \
			cd $(1) && npm ci --no-audit --no-fund; \
		fi; \
	fi

deps:
	go mod download
	@$(call npm_ci,interop)
	@$(call npm_ci,examples/web)

# The web example, served by Vite's dev server; it syncs with `make serve`
# (VITE_LIVESTORE_SYNC_URL points it at another server).
WEB_PORT ?= 5173
web:
	@$(call npm_ci,examples/web)
	cd examples/web && node_modules/.bin/vite --host 127.0.0.1 --port $(WEB_PORT) --strictPort

test: deps
	go vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	go test -race -timeout 20m ./...

bench:
	go test -run '^$$' -bench . -benchtime 2s ./...

# The side-by-side benchmark: livestore-go vs JS LiveStore 0.4.0 vs the SQLite
# floor (about two hours on 2 cores); writes bench/results/results.md and .json.
compare: deps
	go run ./bench/compare
