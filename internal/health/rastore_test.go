package health_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/health"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/server"
	"github.com/scepter/scepter/internal/store/postgres"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
)

// inventoryRA is the RA status serve's RA keeper gives when no revocation
// is known beforehand: the inventory's (enroll.Service.RARevoked).
type inventoryRA struct{ svc *enroll.Service }

func (s inventoryRA) RAUsable(ctx context.Context, ra *pki.RA) error {
	revoked, err := s.svc.RARevoked(ctx, ra)
	if err != nil {
		return err
	}
	if revoked {
		return health.RAProblem(health.ErrRARevoked, context.Canceled)
	}
	return nil
}

// syncBuffer is a log the checks' goroutines write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// With PostgreSQL stopped under a serving node, /readyz names the store
// and the audit trail (which reads it), not the RA key, whose check reads
// the RA's status from the store too: the key is fine, and an operator
// told "RA key" would look at the HSM (r82). Nor does the log say the RA
// key check failed. Once PostgreSQL is back the node is ready again.
func TestReadyzBlamesTheStoreNotTheRAKey(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.StartServer(t)
	st, err := postgres.Open(ctx, srv.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p := fixture.New(t, fixture.Options{})
	log := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(log, nil))
	svc, err := enroll.New(st, p.Authority, p.Clock, logger, enroll.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := health.New(health.Options{Clock: p.Clock, Log: logger},
		health.Store(st), health.AuditTrail(st), health.IssuerKey(p.Authority, p.Clock), health.RAKey(p.Authority, p.Clock, inventoryRA{svc}))
	mux, err := server.PlainMux(server.Handlers{Health: c})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, mux, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with PostgreSQL up: %d %q", code, body)
	}

	srv.Stop(t)
	p.Clock.Advance(health.DefaultCacheFor)
	want := "not ready: store, audit trail\nstore: failed\naudit trail: failed\nissuing CA key: ok\nRA key: ok\n"
	if code, body := get(t, mux, "/readyz"); code != http.StatusServiceUnavailable || body != want {
		t.Errorf("/readyz with PostgreSQL stopped: %d %q, want 503 %q", code, body, want)
	}
	if strings.Contains(log.String(), "RA key") {
		t.Errorf("the log blames the RA key for the store:\n%s", log)
	}

	srv.Start(t)
	p.Clock.Advance(health.DefaultCacheFor)
	if code, body := get(t, mux, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz with PostgreSQL back: %d %q", code, body)
	}
}
