package sqlite

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// TestNotificationQueryPlans: the scheduler's scan of the certificates
// crossing a threshold is an index range read in (not_after, id) order with
// index searches for "renewed?" and "notified?", and claiming, finishing
// and the superseded check read indexes only, on an empty database and on
// an analysed inventory with notifications recorded.
func TestNotificationQueryPlans(t *testing.T) {
	run := func(t *testing.T, s *Store) {
		for _, q := range []store.ExpiryQuery{
			{Now: t0, Within: 30 * 24 * time.Hour},
			{Now: t0, Within: 30 * 24 * time.Hour, Cursor: sqlstore.Cursor{Kind: sqlstore.CursorExpiry, Time: t0.UnixMicro(), ID: 9}.String()},
			{Now: t0, Within: 30 * 24 * time.Hour, Channel: "smtp", Cursor: sqlstore.Cursor{Kind: sqlstore.CursorExpiry, Time: t0.UnixMicro(), ID: 9}.String()},
		} {
			query, args, err := expiringQuery(q)
			if err != nil {
				t.Fatal(err)
			}
			plan := queryPlan(t, s, query, args...)
			if why := badPlan(plan); why != "" {
				t.Errorf("ExpiringCertificates %+v: %s\n%s", q, why, plan)
			}
			if !strings.Contains(plan, "certificates_status_expiry") || !strings.Contains(plan, "certificates_renewed_from") {
				t.Errorf("ExpiringCertificates: plan does not use the status/expiry and renewed_from indexes:\n%s", plan)
			}
		}
		n := t0.UnixMicro()
		for name, qa := range map[string]queryArgs{
			"claim":       claimQuery(store.ClaimQuery{Owner: "o", Now: t0, Lease: time.Minute}),
			"claim smtp":  claimQuery(store.ClaimQuery{Owner: "o", Now: t0, Lease: time.Minute, Channels: []string{"smtp"}}),
			"claim both":  claimQuery(store.ClaimQuery{Owner: "o", Now: t0, Lease: time.Minute, Channels: []string{"smtp", "webhook"}}),
			"claim own":   ownClaimQuery(store.ClaimQuery{Owner: "o", Now: t0, Lease: time.Minute, Limit: 1, Reclaim: true, Channels: []string{"smtp", "webhook"}}),
			"superseded":  {supersededQuery, []any{"i", "s", "smtp", n}},
			"clamp lease": clampQueries(store.ClaimQuery{Owner: "o", Now: t0, Lease: time.Minute})[0],
			"clamp retry": clampQueries(store.ClaimQuery{Owner: "o", Now: t0, Lease: time.Minute, MaxDelay: time.Hour})[1],
			"finish":      {finishQuery, []any{"sent", 1, nil, "", n, "[]", "[]", "i", "s", n, "smtp", "owner"}},
			"renewed":     {`SELECT ` + sqlstore.NotifyCertColumns + `, ` + sqlstore.RenewedClause + ` FROM certificates c WHERE c.issuer_id = ? AND c.serial_hex = ?`, []any{"i", "s"}},
		} {
			plan := queryPlan(t, s, qa.q, qa.args...)
			if why := badPlan(plan); why != "" {
				t.Errorf("%s: %s\n%s", name, why, plan)
			}
			// "Renewed?" searches the partial index of renewals.
			if name == "renewed" && !strings.Contains(plan, "certificates_renewed_from (renewed_from=?)") {
				t.Errorf("renewed: plan does not search certificates_renewed_from:\n%s", plan)
			}
			// Times a clock set back left behind are found by index.
			if (name == "clamp lease" && !strings.Contains(plan, "notifications_leased")) ||
				(name == "clamp retry" && !strings.Contains(plan, "notifications_due")) {
				t.Errorf("%s: plan does not read its index:\n%s", name, plan)
			}
			// The due rows are picked on notifications_due (the claimer's
			// own running leases, taken back first, on notifications_leased)
			// and updated by key, not by walking every due row.
			index := "notifications_due"
			if name == "claim own" {
				index = "notifications_leased (claimed_until>?)"
			}
			if strings.HasPrefix(name, "claim") && (!strings.Contains(plan, index) ||
				!strings.HasPrefix(plan, "SEARCH notifications USING PRIMARY KEY (issuer_id=? AND serial_hex=?")) {
				t.Errorf("%s: plan does not pick on %s and update by key:\n%s", name, index, plan)
			}
		}
	}
	t.Run("empty", func(t *testing.T) { run(t, openTemp(t)) })
	t.Run("analyzed", func(t *testing.T) { run(t, openAnalyzed(t)) })
}

// TestUpgradeKeepsNotificationsOwedToEveryone: a notification recorded
// before 0017 reads back, after the upgrade, with no recipient settled
// (its retry goes to everyone, as before), and its outcome records them.
func TestUpgradeKeepsNotificationsOwedToEveryone(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scepter.db")
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	v16 := fstest.MapFS{}
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() >= "0017" {
			continue
		}
		body, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		v16[e.Name()] = &fstest.MapFile{Data: body}
	}
	if _, err := migrate.Up(ctx, db, v16, dialect()); err != nil {
		t.Fatal(err)
	}
	// Recorded and tried once, as version 16 did.
	if _, err := db.Exec(`INSERT INTO notifications (issuer_id, serial_hex, threshold, channel, status, attempts,
		next_attempt_at, last_error, created_at) VALUES ('issuer', '01', 1, 'smtp', 'pending', 1, ?, '451 later', ?)`,
		t0.UnixMicro(), t0.UnixMicro()); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open of a version 16 database: %v", err)
	}
	defer s.Close()
	cl, err := s.ClaimNotifications(ctx, store.ClaimQuery{Owner: "o", Now: t0, Lease: time.Minute})
	if err != nil || len(cl) != 1 || cl[0].Accepted != nil || cl[0].Refused != nil || cl[0].Attempts != 1 {
		t.Fatalf("claim after the upgrade: %+v, %v", cl, err)
	}
	if err := s.FinishNotification(ctx, store.NotificationOutcome{NotificationKey: cl[0].NotificationKey, Owner: "o",
		Status: store.NotificationPending, NextAttemptAt: t0.Add(time.Minute), Attempted: true, Now: t0,
		Accepted: []string{"ops@example.com"}}); err != nil {
		t.Fatal(err)
	}
	ns, err := s.Notifications(ctx, "issuer", "01")
	if err != nil || len(ns) != 1 || !slices.Equal(ns[0].Accepted, []string{"ops@example.com"}) || ns[0].Refused != nil {
		t.Errorf("after the outcome: %+v, %v", ns, err)
	}
}
