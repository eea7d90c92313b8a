package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/metrics"
)

// The inventory gauges come from the store at scrape time, follow the
// injected clock (expiring, expired, requests past their retention), and
// are reused for CacheFor: a scrape right after another asks the store
// nothing.
func TestInventoryGauges(t *testing.T) {
	e := newEnv(t)
	if err := e.m.Inventory(e.m.Store(e.pki.Store)); err != nil {
		t.Fatal(err)
	}
	e.issue(t, "device-a")
	e.issue(t, "device-b")
	revoked := e.issue(t, "device-c")
	e.pki.Revoke(t, revoked, 1)
	held := e.pki.Request(t, "device-h")
	if res, err := e.held.Enroll(context.Background(), held.Request); err != nil || res.Pending == nil {
		t.Fatalf("held enroll: %+v, %v", res, err)
	}

	check := func(what string, valid, expired, revoked, within7, within30, pending float64) {
		t.Helper()
		fams := scrape(t, e.handler)
		for status, want := range map[string]float64{"valid": valid, "expired": expired, "revoked": revoked} {
			expect(t, fams, "scepter_certificates", map[string]string{"status": status}, want)
		}
		expect(t, fams, "scepter_certificates_expiring", map[string]string{"within": "7d"}, within7)
		expect(t, fams, "scepter_certificates_expiring", map[string]string{"within": "30d"}, within30)
		expect(t, fams, "scepter_enrollment_requests_pending", map[string]string{}, pending)
		if t.Failed() {
			t.Fatalf("after: %s", what)
		}
	}
	check("three issued, one revoked, one held", 2, 0, 1, 0, 0, 1)

	e.issue(t, "device-d")
	check("one more issued, within the cache period", 2, 0, 1, 0, 0, 1)
	e.pki.Clock.Advance(metrics.DefaultCacheFor)
	check("the cache period over", 3, 0, 1, 0, 0, 1)

	// A year's certificates 340 days on: all expire within 30 days, none
	// within 7; the held request's retention is over.
	e.pki.Clock.Advance(340 * 24 * time.Hour)
	check("340 days on", 3, 0, 1, 0, 3, 0)
	e.pki.Clock.Advance(20 * 24 * time.Hour)
	check("360 days on", 3, 0, 1, 3, 3, 0)
	e.pki.Clock.Advance(40 * 24 * time.Hour)
	check("400 days on", 0, 3, 1, 0, 0, 0)
}

// When the store fails, the scrape still answers with everything else,
// the inventory gauges are left out, and the failure is a store error.
func TestInventoryWhenTheStoreFails(t *testing.T) {
	e := newEnv(t)
	st := e.m.Store(e.pki.Store)
	if err := e.m.Inventory(st); err != nil {
		t.Fatal(err)
	}
	if fams := scrape(t, e.handler); fams["scepter_certificates"] == nil {
		t.Fatal("no scepter_certificates while the store works")
	}
	e.pki.Store.Close()
	e.pki.Clock.Advance(metrics.DefaultCacheFor)
	fams := scrape(t, e.handler)
	for _, name := range []string{"scepter_certificates", "scepter_certificates_expiring", "scepter_enrollment_requests_pending"} {
		if fams[name] != nil {
			t.Errorf("%s is served while the store is closed: %v", name, fams[name].GetMetric())
		}
	}
	if fams["go_goroutines"] == nil {
		t.Error("a failing store hides the other metrics")
	}
	// (Collectors run concurrently: the error shows in the next scrape.)
	// Scrapes within the cache period do not ask the failing store again.
	fams = scrape(t, e.handler)
	fams = scrape(t, e.handler)
	expect(t, fams, "scepter_store_errors_total", map[string]string{"op": "Dashboard"}, 1)
	expect(t, fams, "scepter_store_errors_total", map[string]string{"op": "Ping"}, 0)
}
