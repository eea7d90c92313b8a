package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// reservedTBS is the TBSCertificate that the reservation of issuerID's
// serial kept in the SQLite store of dataDir: only a reservation made
// before signing (store.ReserveSerial) has one; a serial registered when
// the certificate was recorded has none.
func reservedTBS(t *testing.T, dataDir, issuerID, serial string) []byte {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "scepter.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tbs []byte
	err = db.QueryRow(`SELECT tbs FROM serials WHERE issuer_id = ? AND serial_hex = ?`, issuerID, serial).Scan(&tbs)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		t.Fatal(err)
	}
	return tbs
}

// Every command that makes an SCEP RA certificate reserves its serial in
// the store, with its TBS, before the CA key signs it, and records it in
// the inventory after: a server's first start (the new CA's RA), 'ca
// rollover' (the next CA's RA) and 'ca renew-ra', as a revoked RA's
// replacement does (TestRevokedRAReplacementIsReservedBeforeItIsSigned).
func TestRACertificatesAreReservedBeforeTheyAreSigned(t *testing.T) {
	tests := []struct {
		name string
		// setup makes the data directory the command runs on.
		setup func(t *testing.T) string
		run   func(t *testing.T, dir string)
		// ra is the RA certificate the command made, and its issuing CA.
		ra func(a *ca.Authority) (*ca.Issuer, *pki.RA)
	}{
		{
			name:  "serve's first start",
			setup: func(t *testing.T) string { return filepath.Join(t.TempDir(), "data") },
			run: func(t *testing.T, dir string) {
				if _, stderr, err := serveOnce(t, "--data-dir", dir); err != nil {
					t.Fatalf("serve: %v\n%s", err, stderr)
				}
			},
			ra: func(a *ca.Authority) (*ca.Issuer, *pki.RA) { return a.Issuer, a.RA },
		},
		{
			name:  "ca rollover",
			setup: func(t *testing.T) string { dir, _ := caDataDir(t, ca.InitOptions{}); return dir },
			run: func(t *testing.T, dir string) {
				if _, stderr, err := runCA(t, nil, dir, "rollover", "--switch-in", "72h"); err != nil || strings.Contains(stderr, "warning") {
					t.Fatalf("ca rollover: %v\n%s", err, stderr)
				}
			},
			ra: func(a *ca.Authority) (*ca.Issuer, *pki.RA) {
				next, ra, _ := a.Next(time.Now())
				return next, ra
			},
		},
		{
			name:  "ca renew-ra",
			setup: func(t *testing.T) string { dir, _ := caDataDir(t, ca.InitOptions{}); return dir },
			run: func(t *testing.T, dir string) {
				// Three years: later than the first RA's end.
				if _, stderr, err := runCA(t, nil, dir, "renew-ra", "--validity", "26280h"); err != nil {
					t.Fatalf("ca renew-ra: %v\n%s", err, stderr)
				}
			},
			ra: func(a *ca.Authority) (*ca.Issuer, *pki.RA) { return a.Issuer, a.RA },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := tc.setup(t)
			tc.run(t, dir)
			a, err := ca.Load(dir, pki.SystemClock{})
			if err != nil {
				t.Fatal(err)
			}
			iss, ra := tc.ra(a)
			if iss == nil || ra == nil || ra.IsCA {
				t.Fatalf("no separate RA: %v, %v", iss, ra)
			}
			serial := ra.Cert.SerialNumber.Text(16)
			if tbs := reservedTBS(t, dir, iss.ID, serial); !bytes.Equal(tbs, ra.Cert.RawTBSCertificate) {
				t.Errorf("the RA's serial %s was not reserved with its TBS before it was signed (reserved TBS: %d bytes)", serial, len(tbs))
			}
			st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if rec, err := st.Certificate(ctx, iss.ID, serial); err != nil || rec.Profile != enroll.RAProfileName {
				t.Errorf("the RA in the inventory: %+v, %v; want it recorded", rec, err)
			}
		})
	}
}

// failingReserveStore is a store whose serial reservations fail.
type failingReserveStore struct{ store.Store }

func (failingReserveStore) ReserveSerial(context.Context, string, string, []byte, time.Time) error {
	return errors.New("the store is away")
}

// A renewal whose reservation fails signs nothing: the RA in service
// stays, and nothing is recorded.
func TestRenewRAWithoutAReservationSignsNothing(t *testing.T) {
	ctx := context.Background()
	p := fixture.New(t, fixture.Options{})
	before := p.Service.ActiveRA()
	p.Clock.Set(before.Cert.NotAfter.Add(-20 * raTestDay))
	_, _, err := renewRA(ctx, failingReserveStore{p.Store}, p.Dir, ca.RenewRAOptions{GenerateKey: testKeys.Generate}, p.Clock, "host-a tester", nil)
	if err == nil || !strings.Contains(err.Error(), "the store is away") {
		t.Fatalf("renewRA with a failing reservation: %v, want its error", err)
	}
	a, err := ca.Load(p.Dir, p.Clock)
	if err != nil {
		t.Fatal(err)
	}
	if !a.RA.Cert.Equal(before.Cert) {
		t.Error("the RA in service changed")
	}
	if _, err := os.Stat(filepath.Join(p.Dir, "ca", ca.RetiredRADir)); err == nil {
		t.Error("the RA in service was retired")
	}
}
