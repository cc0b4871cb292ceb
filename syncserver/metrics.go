package syncserver

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Push results, the "result" label of livestore_sync_pushes_total.
const (
	pushOK              = "ok"
	pushServerAhead     = "server_ahead"
	pushBackendMismatch = "backend_id_mismatch"
	pushRejected        = "rejected" // malformed or over a limit
	pushFailed          = "error"    // storage failure
)

// Reasons a connection was refused before the upgrade, the "reason" label of
// livestore_sync_connections_refused_total.
const (
	refusedConnLimit  = "connection_limit" // MaxConnections
	refusedStoreLimit = "store_limit"      // MaxConnectionsPerStore
	refusedAuth       = "auth"             // AuthFunc
	refusedOrigin     = "origin"           // OriginPatterns
)

type metrics struct {
	reg            *prometheus.Registry
	clients        prometheus.Gauge
	pushes         *prometheus.CounterVec
	pulls          *prometheus.CounterVec
	eventsPushed   prometheus.Counter
	eventsSent     prometheus.Counter
	pushDuration   prometheus.Histogram
	protocolErrors prometheus.Counter
	pingTimeouts   prometheus.Counter
	refused        *prometheus.CounterVec
	pullsRefused   prometheus.Counter
	pullBytes      prometheus.Gauge
	pullWaits      prometheus.Counter
	httpRequests   *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	m := &metrics{
		reg: reg,
		clients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "livestore_sync_connected_clients",
			Help: "WebSocket connections currently open.",
		}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livestore_sync_pushes_total",
			Help: "Push requests answered, by result.",
		}, []string{"result"}),
		pulls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livestore_sync_pulls_total",
			Help: "Pull requests started, by whether they are live.",
		}, []string{"live"}),
		eventsPushed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livestore_sync_events_pushed_total",
			Help: "Events stored from pushes.",
		}),
		eventsSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livestore_sync_events_sent_total",
			Help: "Events sent to clients in pull pages and live updates.",
		}),
		pushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "livestore_sync_push_duration_seconds",
			Help:    "Time from receiving a push to acknowledging it.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		protocolErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livestore_sync_protocol_errors_total",
			Help: "Messages answered with a protocol error (undecodable, unknown tag, bad request id, over a limit).",
		}),
		pingTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livestore_sync_ping_timeouts_total",
			Help: "Connections closed because the client did not answer a WebSocket ping in time.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livestore_sync_connections_refused_total",
			Help: "Connections refused before the WebSocket upgrade, by reason (connection_limit, store_limit, auth, origin).",
		}, []string{"reason"}),
		pullsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livestore_sync_pulls_refused_total",
			Help: "Pull requests refused because their connection had MaxPullsPerConnection pulls open.",
		}),
		pullBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "livestore_sync_pull_bytes_held",
			Help: "Bytes of pull pages read from storage and not yet written to their clients (bounded by MaxPullBytes).",
		}),
		pullWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livestore_sync_pull_budget_waits_total",
			Help: "Pull pages that waited because MaxPullBytes were held.",
		}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livestore_sync_http_requests_total",
			Help: "Requests of the HTTP transport admitted, by procedure (pull, push, ping).",
		}, []string{"procedure"}),
	}
	for _, c := range []prometheus.Collector{m.clients, m.pushes, m.pulls, m.eventsPushed, m.eventsSent, m.pushDuration, m.protocolErrors, m.pingTimeouts, m.refused, m.pullsRefused, m.pullBytes, m.pullWaits, m.httpRequests} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, r := range []string{pushOK, pushServerAhead, pushBackendMismatch, pushRejected, pushFailed} {
		m.pushes.WithLabelValues(r)
	}
	for _, r := range []string{refusedConnLimit, refusedStoreLimit, refusedAuth, refusedOrigin} {
		m.refused.WithLabelValues(r)
	}
	m.pulls.WithLabelValues("true")
	m.pulls.WithLabelValues("false")
	return m, nil
}

// defaultRegistry returns a registry with the Go runtime and process collectors.
func defaultRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
