package enroll_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/postgres"
)

// countingWrites counts what a request writes or reserves before and
// while it is issued or held.
type countingWrites struct {
	store.Store
	reserved, recorded, held atomic.Int32
}

func (s *countingWrites) ReserveSerial(ctx context.Context, issuerID, serialHex string, tbs []byte, at time.Time) error {
	s.reserved.Add(1)
	return s.Store.ReserveSerial(ctx, issuerID, serialHex, tbs, at)
}

func (s *countingWrites) ReserveSerialClaiming(ctx context.Context, c store.TransactionClaim, issuerID, serialHex string, tbs []byte) (bool, error) {
	s.reserved.Add(1)
	return s.Store.ReserveSerialClaiming(ctx, c, issuerID, serialHex, tbs)
}

func (s *countingWrites) RecordIssuance(ctx context.Context, in store.Issuance) error {
	s.recorded.Add(1)
	return s.Store.RecordIssuance(ctx, in)
}

func (s *countingWrites) CreateRequest(ctx context.Context, r pki.EnrollmentRequest, consume []byte, ev pki.AuditEvent) error {
	s.held.Add(1)
	return s.Store.CreateRequest(ctx, r, consume, ev)
}

// schemaAheadErr is what the PostgreSQL store's SchemaAhead returns once
// another node migrated its schema past this binary's.
var schemaAheadErr = &pki.Error{Code: pki.EUnavailable, Message: postgres.SchemaAheadMessageFor(27),
	Err: fmt.Errorf("%w: %w", store.ErrUnavailable, &migrate.TooNewError{Have: 27, Known: 26})}

// A node whose IssuanceGate refuses (its store's schema is newer than its
// binary's) answers every enrollment 503 with the gate's message, a
// first enrollment and one at an approval profile alike, without
// claiming, reserving a serial (so signing), recording or holding
// anything, and logs no ERROR for it: a fleet retrying every few seconds
// would flood the log. Once the gate opens, the same requests go through.
func TestIssuanceGateRefusesBeforeAnythingIsWritten(t *testing.T) {
	held := pki.DefaultProfile()
	held.Name, held.ChallengeMode, held.RequireApproval = "held", enroll.ChallengeOneTime, true
	plain := pki.DefaultProfile()
	for _, c := range []struct {
		profile string
		want    func(*enroll.Result) bool
	}{
		{plain.Name, func(r *enroll.Result) bool { return r.Certificate != nil }},
		{held.Name, func(r *enroll.Result) bool { return r.Pending != nil }},
	} {
		t.Run(c.profile, func(t *testing.T) {
			profiles := map[string]pki.Profile{plain.Name: plain, held.Name: held}
			f := newFixtureWith(t, enroll.Config{Profiles: profiles, DefaultProfile: plain.Name})
			st := &countingWrites{Store: f.st}
			var closed atomic.Bool
			closed.Store(true)
			var logged bytes.Buffer
			svc, err := enroll.New(st, f.auth, f.clock, slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelError})),
				enroll.Config{Profiles: profiles, DefaultProfile: plain.Name, StaticChallenge: static, IssuanceGate: func() error {
					if closed.Load() {
						return schemaAheadErr
					}
					return nil
				}})
			if err != nil {
				t.Fatal(err)
			}
			req := request(t, static, "dev.example")
			req.Profile = c.profile
			if c.profile == held.Name {
				if req.Evidence.Challenge, _, err = f.admin.NewChallenge(context.Background(), time.Hour, held.Name, "test"); err != nil {
					t.Fatal(err)
				}
			}
			for range 3 {
				_, err := svc.Enroll(context.Background(), req)
				if pki.ErrorCode(err) != pki.EUnavailable || pki.ErrorMessage(err) != schemaAheadErr.Message || !enroll.Gated(err) {
					t.Fatalf("enrollment at a closed gate: %v (gated %t), want 503 %q", err, enroll.Gated(err), schemaAheadErr.Message)
				}
			}
			if r, h, n := st.reserved.Load(), st.held.Load(), st.recorded.Load(); r != 0 || h != 0 || n != 0 {
				t.Errorf("refused requests reserved %d serials, held %d requests and recorded %d issuances, want none", r, h, n)
			}
			if logged.Len() > 0 {
				t.Errorf("refused requests were logged at ERROR:\n%s", logged.String())
			}
			closed.Store(false)
			res, err := svc.Enroll(context.Background(), req)
			if err != nil || !c.want(res) {
				t.Fatalf("the same request once the gate opened: %+v, %v", res, err)
			}
		})
	}
}
