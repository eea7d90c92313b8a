package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// InventorySource is what the inventory gauges read; store.Store is one.
type InventorySource interface {
	// Dashboard gives the certificate counts from the counters the store
	// keeps with every change (no scan of the inventory).
	Dashboard(ctx context.Context, now time.Time, days int) (store.Dashboard, error)
}

// inventoryTimeout bounds the store queries of one scrape.
const inventoryTimeout = 10 * time.Second

// Inventory exports, at scrape time, the certificates by status (valid,
// expired, revoked), the valid ones expiring within 7 and 30 days (both
// from store.Dashboard, the console's counters), and the requests held for
// approval. One scrape's counts are reused for CacheFor,
// so scrapes in a storm cost the store nothing more. When the store fails,
// the gauges are left out of the scrape (and the failure is logged).
func (m *Metrics) Inventory(src InventorySource) error {
	return m.reg.Register(&inventory{src: src, clock: m.clock, cacheFor: m.cacheFor, log: m.log})
}

var (
	certificatesDesc = prometheus.NewDesc("scepter_certificates",
		"Certificates in the inventory by status at the reading: valid (unexpired), expired, revoked; "+
			"the server's own (SCEP RA, OCSP responder, HTTPS) left out, as on the console's dashboard.", []string{"status"}, nil)
	expiringDesc = prometheus.NewDesc("scepter_certificates_expiring",
		"Valid certificates expiring within 7d or 30d of the reading, the server's own left out.", []string{"within"}, nil)
	pendingDesc = prometheus.NewDesc("scepter_enrollment_requests_pending",
		"Enrollment requests held for approval (whose retention has not run out).", nil, nil)
)

// inventory is the collector of Inventory.
type inventory struct {
	src      InventorySource
	clock    pki.Clock
	cacheFor time.Duration
	log      *slog.Logger

	mu     sync.Mutex // held while the store is asked: scrapers share one query
	at     time.Time
	have   bool
	counts inventoryCounts
	err    error
}

type inventoryCounts struct {
	byStatus map[string]int64
	expiring map[int]int64
	pending  int64
}

func (c *inventory) Describe(ch chan<- *prometheus.Desc) {
	ch <- certificatesDesc
	ch <- expiringDesc
	ch <- pendingDesc
}

func (c *inventory) Collect(ch chan<- prometheus.Metric) {
	counts, err := c.snapshot()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(certificatesDesc, err)
		return
	}
	for _, s := range []string{"valid", "expired", "revoked"} {
		ch <- prometheus.MustNewConstMetric(certificatesDesc, prometheus.GaugeValue, float64(counts.byStatus[s]), s)
	}
	for _, d := range []int{7, 30} {
		ch <- prometheus.MustNewConstMetric(expiringDesc, prometheus.GaugeValue, float64(counts.expiring[d]), fmt.Sprintf("%dd", d))
	}
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(counts.pending))
}

// snapshot returns the counts of the last query when it is recent enough,
// and queries the store otherwise. A failure is kept as long as counts
// are: a store that fails is not asked again by every scraper.
func (c *inventory) snapshot() (inventoryCounts, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	if c.have && !now.Before(c.at) && now.Sub(c.at) < c.cacheFor {
		return c.counts, c.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), inventoryTimeout)
	defer cancel()
	counts, err := c.query(ctx, now)
	if err != nil && (!c.have || c.err == nil) {
		c.log.Warn("metrics: counting the inventory", "err", err)
	}
	c.at, c.have, c.counts, c.err = now, true, counts, err
	return counts, err
}

func (c *inventory) query(ctx context.Context, now time.Time) (inventoryCounts, error) {
	d, err := c.src.Dashboard(ctx, now, 1)
	if err != nil {
		return inventoryCounts{}, err
	}
	counts := inventoryCounts{byStatus: d.ByStatus, expiring: d.Expiring, pending: d.Pending}
	if counts.byStatus == nil || counts.expiring == nil {
		return inventoryCounts{}, errors.New("the store returned no counts")
	}
	return counts, nil
}
