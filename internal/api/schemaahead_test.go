package api_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/api"
	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/ops"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/postgres"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
)

// syncBuffer is a log sink the server's goroutines write while the test
// reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// An approval at a node whose PostgreSQL store another node migrated past
// this binary's schema is refused 503 with the upgrade message, with
// nothing signed, and logged at WARN, not ERROR: the first one, which the
// serial reservation refuses before the node's gate knows, and the next,
// which the gate refuses. The request stays pending, for an upgraded node.
func TestApprovalOnNewerSchemaIsNotLoggedAtError(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	pg, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	clock := pkitest.NewClock(fixture.Start)
	authority, _, err := ca.LoadOrCreate(t.TempDir(), ca.InitOptions{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	var logged syncBuffer
	log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelWarn}))
	approval := pki.DefaultProfile()
	approval.Name, approval.RequireApproval = "approval", true
	profiles := map[string]pki.Profile{"default": pki.DefaultProfile(), "approval": approval}
	svc, err := enroll.New(pg, authority, clock, log, enroll.Config{StaticChallenge: fixture.Challenge, DefaultProfile: "default",
		Profiles: profiles, IssuanceGate: pg.SchemaAhead})
	if err != nil {
		t.Fatal(err)
	}
	adm := admin.New(pg, clock, log, profiles, "default")
	au := auth.New(pg, clock, log)
	h := api.New(ops.New(ops.Config{Store: pg, Admin: adm, Enroll: svc, Auth: au, Authority: authority, Clock: clock, Log: log}), log)
	mux := http.NewServeMux()
	for pattern, handler := range h.Routes() {
		mux.Handle(pattern, handler)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	token, _, err := au.NewToken(ctx, "operator", pki.RoleOperator, 0, auth.CLI("cli:test"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, cn := range []string{"held-1", "held-2"} {
		req := (&fixture.PKI{}).Request(t, cn)
		req.Profile = "approval"
		if req.Evidence.Challenge, _, err = adm.NewChallenge(ctx, time.Hour, "approval", "test"); err != nil {
			t.Fatal(err)
		}
		res, err := svc.Enroll(ctx, req.Request)
		if err != nil || res.Pending == nil {
			t.Fatalf("not held: %+v, %v", res, err)
		}
		ids = append(ids, res.Pending.ID)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	known, err := migrate.Latest(postgres.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'from_the_future', '2031-01-01T00:00:00Z')`, known+1); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids { // the first meets the reservation's read, the next the gate
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/requests/"+id+"/approve", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body.String(), postgres.SchemaAheadMessage) {
			t.Errorf("approve %s: HTTP %d %s, want 503 %q", id, resp.StatusCode, body.String(), postgres.SchemaAheadMessage)
		}
	}
	var serials, pending int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM serials), (SELECT count(*) FROM enrollment_requests WHERE status = 'pending')`).Scan(&serials, &pending); err != nil {
		t.Fatal(err)
	}
	if serials != 0 || pending != len(ids) {
		t.Errorf("after the refused approvals: %d serials reserved and %d requests pending, want 0 and %d", serials, pending, len(ids))
	}
	if strings.Contains(logged.String(), "level=ERROR") {
		t.Errorf("the refused approvals were logged at ERROR:\n%s", logged.String())
	}
}
