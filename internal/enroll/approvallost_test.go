package enroll_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/credential"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/postgres"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
	"github.com/scepter/scepter/internal/store/sqlite/sqlitetest"
)

// revokedBeforeRecord holds each approval's RecordIssuance until
// approvals of them have come to it, then lets revoke run once (a
// revocation getting to the store after the approvals checked the key,
// before they record), then records: the race an approval loses at the
// store's recording step, forced without sleeps.
type revokedBeforeRecord struct {
	store.Store
	arrived *sync.WaitGroup
	once    *sync.Once
	revoke  func()
}

func (s *revokedBeforeRecord) RecordIssuance(ctx context.Context, in store.Issuance) error {
	if in.CompleteRequestID != "" {
		s.arrived.Done()
		s.arrived.Wait()
		s.once.Do(s.revoke)
	}
	return s.Store.RecordIssuance(ctx, in)
}

// An approval that loses the race to a keyCompromise revocation of
// another certificate of the request's key (the revocation recorded after
// the approval checked the key, before it recorded the certificate)
// rejects the request by the system, as an approval that finds the key
// compromised first does: refused saying it was rejected, the request
// rejected with the reason, one request.rejected event by system, no
// certificate. Approvals on two nodes at once decide it once. On SQLite
// and on PostgreSQL (two nodes on one database).
func TestApprovalLosingToKeyCompromiseRejects(t *testing.T) {
	for _, c := range []struct {
		name      string
		backend   string
		approvals int
	}{
		{"one approval", "sqlite", 1},
		{"two approvals at once", "sqlite", 2},
		{"one approval", "postgres", 1},
		{"two approvals at once on two nodes", "postgres", 2},
	} {
		t.Run(c.backend+"/"+c.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
			open := func() store.Store { return sqlitetest.Open(t, filepath.Join(dir, "db")) }
			if c.backend == "postgres" {
				url := pgtest.Database(t)
				open = func() store.Store {
					pg, err := postgres.Open(ctx, url)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { pg.Close() })
					return pg
				}
			}
			held := pki.DefaultProfile()
			held.Name, held.RequireApproval, held.ChallengeMode = "approval", true, enroll.ChallengeOneTime
			def := pki.DefaultProfile()
			profiles := map[string]pki.Profile{held.Name: held, def.Name: def}
			var (
				arrived sync.WaitGroup
				once    sync.Once
				nodes   []*enroll.Service
				racing  []*revokedBeforeRecord
				st      store.Store
			)
			arrived.Add(c.approvals)
			for i := range c.approvals {
				if i == 0 || c.backend == "postgres" {
					st = open() // SQLite: one store for both nodes, as on one host
				}
				auth, _, err := ca.LoadOrCreate(dir, ca.InitOptions{GenerateKey: testKeys.Generate}, clock)
				if err != nil {
					t.Fatal(err)
				}
				r := &revokedBeforeRecord{Store: st, arrived: &arrived, once: &once}
				svc, err := enroll.New(r, auth, clock, slog.New(slog.DiscardHandler), enroll.Config{Profiles: profiles, DefaultProfile: def.Name,
					StaticChallenge: static, Passwords: credential.NewRememberingPasswordChecker(0, clock.Now, enroll.AcceptedPasswordLifetime).WithBurnHash(testBurnHash())})
				if err != nil {
					t.Fatal(err)
				}
				nodes, racing = append(nodes, svc), append(racing, r)
			}
			adm := admin.New(st, clock, nil, profiles, def.Name)

			k := newKey(t)
			other, err := nodes[0].Enroll(ctx, namedWithKey(t, k, static, "other-dev"))
			if err != nil {
				t.Fatal(err)
			}
			otp, _, err := adm.NewChallenge(ctx, time.Hour, held.Name, "test")
			if err != nil {
				t.Fatal(err)
			}
			req := namedWithKey(t, k, otp, "held-dev")
			req.Profile = held.Name
			res, err := nodes[0].Enroll(ctx, req)
			if err != nil || res.Pending == nil {
				t.Fatalf("held: %+v, %v", res, err)
			}
			id := res.Pending.ID
			revoke := func() {
				if _, err := adm.Revoke(ctx, other.Record.SerialHex, "", store.ReasonKeyCompromise, "cli:test"); err != nil {
					t.Error(err)
				}
			}
			for _, r := range racing {
				r.revoke = revoke
			}

			results, errs := make([]*enroll.Result, len(nodes)), make([]error, len(nodes))
			var wg sync.WaitGroup
			for i, svc := range nodes {
				wg.Go(func() { results[i], errs[i] = svc.Approve(ctx, id, "cli:test") })
			}
			wg.Wait()

			r, err := st.Request(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != pki.RequestRejected || r.DecidedBy != enroll.SystemRejecter || !strings.Contains(r.Reason, "revoked as compromised on ") {
				t.Errorf("request %s by %q (%q); want rejected by %q, the key compromised", r.Status, r.DecidedBy, r.Reason, enroll.SystemRejecter)
			}
			want := "request " + id + " cannot be issued, so it was rejected: " + r.Reason
			for i := range nodes {
				if msg := pki.ErrorMessage(errs[i]); pki.ErrorCode(errs[i]) != pki.EBadRequest || msg != want {
					t.Errorf("approval %d: %+v, %q (%s); want %s, %q", i, results[i], msg, pki.ErrorCode(errs[i]), pki.EBadRequest, want)
				}
			}
			evs, err := st.ListAudit(ctx, store.AuditFilter{Type: pki.EventRequestRejected, Limit: 10})
			if err != nil || len(evs) != 1 || evs[0].Actor != enroll.SystemRejecter || evs[0].Reason != r.Reason {
				t.Errorf("rejection events %+v, %v; want one by %q with the reason", evs, err, enroll.SystemRejecter)
			}
			certs, _, err := st.ListCertificates(ctx, store.CertFilter{})
			if err != nil || len(certs) != 1 {
				t.Errorf("%d certificates, %v; want only the one revoked", len(certs), err)
			}
			// Its device is refused for good, with the rejection.
			_, err = nodes[0].PollBy(ctx, pki.ProtocolSCEP, held.Name, req.TransactionID, req.CSR.RawSubjectPublicKeyInfo)
			if pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(pki.ErrorMessage(err), "the request was rejected: "+r.Reason) {
				t.Errorf("polled: %v (%s); want the rejection", err, pki.ErrorCode(err))
			}
		})
	}
}
