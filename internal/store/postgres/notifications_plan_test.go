package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/store"
)

// TestClaimQueryPlans: after an outage (20,000 notifications due, a few
// leased), a claim reads notifications_due in due order up to its LIMIT,
// and a restarted node taking back its own leases first reads the running
// leases on notifications_leased: neither reads the table through.
func TestClaimQueryPlans(t *testing.T) {
	s, _ := openFresh(t)
	ctx := context.Background()
	if _, err := s.pool.Exec(ctx, `INSERT INTO notifications (issuer_id, serial_hex, threshold, channel, status,
		next_attempt_at, claimed_until, claimed_by, created_at)
		SELECT 'issuer', to_hex(i), 1, 'smtp', 'pending', i,
			CASE WHEN i % 1000 = 0 THEN $1::BIGINT END, CASE WHEN i % 1000 = 0 THEN 'node-' || (i % 3000) ELSE '' END, 0
		FROM generate_series(1, 20000) AS i`, t0.Add(time.Minute).UnixMicro()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `VACUUM ANALYZE notifications`); err != nil {
		t.Fatal(err)
	}
	q := store.ClaimQuery{Owner: "node-1000", Now: t0, Lease: time.Minute, Limit: 1, Reclaim: true, Channels: []string{"smtp", "webhook"}}
	for _, c := range []struct {
		name, index string
		build       func(store.ClaimQuery) (string, []any)
	}{
		{"claim", "notifications_due", claimQuery},
		{"claim own", "notifications_leased", ownClaimQuery},
	} {
		query, args := c.build(q)
		plan := explain(t, s, query, args...)
		if !strings.Contains(plan, c.index) || strings.Contains(plan, "Seq Scan") {
			t.Errorf("%s: plan does not read %s alone:\n%s", c.name, c.index, plan)
		}
	}
}
