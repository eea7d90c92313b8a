package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scepter/scepter/internal/server"
)

// Limits exports, at scrape time, what the server's limits on
// unauthenticated work have done (server.Guard.Stats): the requests they
// turned away, and why; the requests that waited for a slot, and how many
// wait now; the connections closed, or asked to close, to make room. The
// request histogram does not see any of it: the limits answer before the
// instrumented handler runs. A burst that outgrows the queue shows here
// first.
func (m *Metrics) Limits(stats func() server.LimitStats) error {
	return m.reg.Register(limitsCollector(stats))
}

var (
	refusedDesc = prometheus.NewDesc("scepter_http_refused_total",
		"HTTP requests refused by the limits before any handler: reason rate_limit (429, per client address) "+
			"or busy (503, no slot free in flight, or none within --queue-wait).", []string{"reason"}, nil)
	waitedDesc = prometheus.NewDesc("scepter_http_waited_total",
		"HTTP requests that found every slot in flight taken and waited for one (--max-queued), served or not.", nil, nil)
	waitingDesc = prometheus.NewDesc("scepter_http_waiting",
		"HTTP requests waiting now for a slot in flight.", nil, nil)
	evictedDesc = prometheus.NewDesc("scepter_http_connections_closed_total",
		"Connections closed to make room for new ones at --max-conns.", nil, nil)
	rotatedDesc = prometheus.NewDesc("scepter_http_connections_rotated_total",
		"Responses that told their client to close its connection (Connection: close) so that a new one waiting at --max-conns "+
			"could take its place, when every connection was busy.", nil, nil)
)

type limitsCollector func() server.LimitStats

func (limitsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{refusedDesc, waitedDesc, waitingDesc, evictedDesc, rotatedDesc} {
		ch <- d
	}
}

func (c limitsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c()
	ch <- prometheus.MustNewConstMetric(refusedDesc, prometheus.CounterValue, float64(st.RateLimited), "rate_limit")
	ch <- prometheus.MustNewConstMetric(refusedDesc, prometheus.CounterValue, float64(st.Busy), "busy")
	ch <- prometheus.MustNewConstMetric(waitedDesc, prometheus.CounterValue, float64(st.Waited))
	ch <- prometheus.MustNewConstMetric(waitingDesc, prometheus.GaugeValue, float64(st.Waiting))
	ch <- prometheus.MustNewConstMetric(evictedDesc, prometheus.CounterValue, float64(st.Evicted))
	ch <- prometheus.MustNewConstMetric(rotatedDesc, prometheus.CounterValue, float64(st.Rotated))
}
