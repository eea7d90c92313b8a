// Package metrics is scepter's Prometheus instrumentation: a registry of
// its own (no global state), with
//
//   - enrollments by protocol, profile and result, and refusals by error
//     code, from the enrollment service's one observer (enroll.Observer);
//   - expiry notifications sent, failed (tries) and given up per channel
//     (notify.Observer);
//   - store errors per operation, from a wrapper around the store (Store);
//   - certificates by status, expiring within 7 and 30 days, and requests
//     held for approval, counted at scrape time from the store's cheap
//     counters and reused for a few seconds (Inventory);
//   - OCSP answers and CRL generations;
//   - request latency per listener, route pattern, method and status
//     (Instrument);
//   - the Go runtime and process collectors.
//
// The core packages (enroll, notify, ca, store) know nothing of Prometheus:
// they report through small observer interfaces this package implements.
package metrics

import (
	stdlog "log"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
)

// DefaultCacheFor is how long the inventory counts of one scrape are
// reused by the next ones.
const DefaultCacheFor = 5 * time.Second

// Options configure New.
type Options struct {
	// Clock times requests and decides what "expired" and "expiring" mean
	// (required).
	Clock pki.Clock
	Log   *slog.Logger
	// CacheFor is how long inventory counts are reused (DefaultCacheFor),
	// so a storm of scrapes costs the store one query per period.
	CacheFor time.Duration
}

// Metrics holds the registry and the metrics scepter updates. Its methods
// are safe for concurrent use.
type Metrics struct {
	reg      *prometheus.Registry
	clock    pki.Clock
	log      *slog.Logger
	cacheFor time.Duration
	handler  http.Handler

	enrollments   *prometheus.CounterVec
	refusals      *prometheus.CounterVec
	requests      *prometheus.HistogramVec
	notifySent    *prometheus.CounterVec
	notifyFailed  *prometheus.CounterVec
	notifyGivenUp *prometheus.CounterVec
	storeErrors   *prometheus.CounterVec
	crls          prometheus.Counter
}

// New builds a registry with scepter's metrics and the Go runtime and
// process collectors.
func New(o Options) *Metrics {
	if o.Clock == nil {
		o.Clock = pki.SystemClock{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.CacheFor <= 0 {
		o.CacheFor = DefaultCacheFor
	}
	reg := prometheus.NewRegistry()
	m := &Metrics{reg: reg, clock: o.Clock, log: o.Log, cacheFor: o.CacheFor}
	m.enrollments = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "scepter_enrollments_total",
		Help: "Outcomes of enrollment calls (SCEP, EST, approvals): issued, renewed, pending (held for approval), " +
			"polled (a held request asked after again), reanswered (a first enrollment or renewal whose answer was lost sent its certificate again) or refused (by the service, or by the SCEP or EST handler before it: a replay, a bad signature, an envelope that does not open, a malformed body). profile is a configured profile or \"unknown\".",
	}, []string{"protocol", "profile", "result"})
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "scepter_enrollment_refusals_total",
		Help: "Refused enrollment calls by error code (the result=\"refused\" of scepter_enrollments_total, split by why).",
	}, []string{"protocol", "profile", "code"})
	m.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "scepter_http_request_duration_seconds",
		Help:    "Time to answer HTTP requests, by listener, route pattern (never the raw path), method and status code.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"listener", "route", "method", "code"})
	m.notifySent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "scepter_notifications_sent_total",
		Help: "Expiry notifications delivered, by channel.",
	}, []string{"channel"})
	m.notifyFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "scepter_notifications_failed_total",
		Help: "Expiry notification sends that failed, by channel: each failed try counts, and most are tried again later; notifications given up for good are scepter_notifications_given_up_total.",
	}, []string{"channel"})
	m.notifyGivenUp = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "scepter_notifications_given_up_total",
		Help: "Expiry notifications given up for good, by channel (each also audited as notification.failed): the certificate expired before it was delivered, or a more urgent notification replaced it after failed tries (the tries have no cap). One whose last try may have delivered it counts too.",
	}, []string{"channel"})
	m.storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "scepter_store_errors_total",
		Help: "Store calls that failed, by store operation (not found, conflicts and calls the client gave up on are answers, not errors).",
	}, []string{"op"})
	m.crls = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "scepter_crls_published_total",
		Help: "CRL generations this node signed and stored.",
	})
	reg.MustRegister(m.enrollments, m.refusals, m.requests, m.notifySent, m.notifyFailed, m.notifyGivenUp, m.storeErrors, m.crls,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: scrapeLog{slog.NewLogLogger(o.Log.Handler(), slog.LevelWarn)},
		// A failing collector (the store down) does not hide the others.
		ErrorHandling: promhttp.ContinueOnError,
		// Scrapers beyond these wait for nothing: 503.
		MaxRequestsInFlight: 4,
		Registry:            reg,
	})
	return m
}

// scrapeLog logs what promhttp reports (a collector failing, say), except
// that the scraper went away before its answer was written: that is the
// scraper's business, and one aborted scrape wrote a line per metric
// family, so anyone could fill the log.
type scrapeLog struct{ *stdlog.Logger }

// sendFailed begins promhttp's report of a failed write to the scraper.
const sendFailed = "error encoding and sending metric family:"

func (l scrapeLog) Println(v ...any) {
	if len(v) > 0 && v[0] == sendFailed {
		return
	}
	l.Logger.Println(v...)
}

// Registry is the registry /metrics serves.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Path is where Routes serves the registry, for limits that must never
// queue a scrape behind other requests (server.Limits.MonitoringPaths).
const Path = "/metrics"

// Routes serves the registry at Path (server.Router).
func (m *Metrics) Routes() map[string]http.Handler {
	return map[string]http.Handler{"GET " + Path: m.handler}
}

// Enrolled implements enroll.Observer.
func (m *Metrics) Enrolled(o enroll.Outcome) {
	m.enrollments.WithLabelValues(o.Protocol, o.Profile, o.Result).Inc()
	if o.Result == enroll.ResultRefused {
		m.refusals.WithLabelValues(o.Protocol, o.Profile, string(o.Code)).Inc()
	}
}

// Channels implements notify.Observer: the sent, failed and given-up counts of the
// channels a node sends on are exported at 0 from the start, so that
// rate() and absent() see them before the first notification; a channel
// the node does not have gets none, so none can pass for one it sends on.
func (m *Metrics) Channels(names []string) {
	for _, ch := range names {
		m.notifySent.WithLabelValues(ch)
		m.notifyFailed.WithLabelValues(ch)
		m.notifyGivenUp.WithLabelValues(ch)
	}
}

// GivenUp implements notify.Observer.
func (m *Metrics) GivenUp(channel string) {
	m.notifyGivenUp.WithLabelValues(channel).Inc()
}

// Delivered implements notify.Observer.
func (m *Metrics) Delivered(channel string, err error) {
	if err != nil {
		m.notifyFailed.WithLabelValues(channel).Inc()
		return
	}
	m.notifySent.WithLabelValues(channel).Inc()
}

// OCSPStats is what the OCSP responder reports of itself.
type OCSPStats interface {
	Stats() (signed, served int64)
}

// OCSP exports the responder's counts of answers served and signed.
func (m *Metrics) OCSP(r OCSPStats) error {
	served := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "scepter_ocsp_responses_total",
		Help: "OCSP answers served (from the cache or signed for the request).",
	}, func() float64 { _, n := r.Stats(); return float64(n) })
	signed := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "scepter_ocsp_signatures_total",
		Help: "OCSP answers signed (the rest came from the cache).",
	}, func() float64 { n, _ := r.Stats(); return float64(n) })
	if err := m.reg.Register(served); err != nil {
		return err
	}
	return m.reg.Register(signed)
}
