# Two commands set everything up and run it:
#   make serve   the sync server (with devtools) on an embedded SQLite database
#   make test    the whole test suite, including the JS interop tests
.PHONY: serve test deps bench compare

LIVESTORE_TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
export LIVESTORE_TEST_POSTGRES_URL

serve:
	go run ./cmd/livestore serve

deps:
	go mod download
	@if [ -f interop/package-lock.json ]; then \
		if [ ! -d interop/node_modules ] || [ interop/package-lock.json -nt interop/node_modules ]; then \
			cd interop && npm ci --no-audit --no-fund; \
		fi; \
	fi

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
