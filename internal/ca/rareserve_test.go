package ca

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pkitest"
)

// Every SCEP RA certificate the ca package issues has its serial reserved,
// with the TBS the CA key then signs, before it is signed, when its caller
// gives a ReserveFunc: the first start's, one issued again at a start for
// an ra.crt removed by hand, a rollover's next RA and a renewed RA, as
// a revoked RA's replacement (TestReplaceRAReservesItsSerial). A
// reservation that fails leaves nothing signed in place, and a taken
// serial is drawn again.
func TestRAIssuancesReserveTheirSerial(t *testing.T) {
	type made struct {
		issuerID string
		ra       *x509.Certificate
	}
	tests := []struct {
		name string
		// setup prepares a data directory and returns it.
		setup func(t *testing.T, clock *pkitest.Clock) string
		// run issues the RA in dir with reserve.
		run func(dir string, reserve ReserveFunc, clock *pkitest.Clock) (made, error)
		// unsigned checks that nothing was put in place after a failed
		// reservation.
		unsigned func(t *testing.T, dir string)
	}{
		{
			name:  "first start",
			setup: func(t *testing.T, _ *pkitest.Clock) string { return t.TempDir() },
			run: func(dir string, reserve ReserveFunc, clock *pkitest.Clock) (made, error) {
				a, _, err := LoadOrCreate(dir, InitOptions{ReserveRA: reserve}, clock)
				if err != nil {
					return made{}, err
				}
				return made{a.Issuer.ID, a.RA.Cert}, nil
			},
			unsigned: func(t *testing.T, dir string) {
				if _, err := os.Stat(filepath.Join(dir, "ca")); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("DATA/ca after a failed reservation: %v, want none", err)
				}
			},
		},
		{
			name: "start without ra.crt",
			setup: func(t *testing.T, clock *pkitest.Clock) string {
				dir, _ := newCA(t, InitOptions{}, clock)
				if err := os.Remove(filepath.Join(dir, "ca", RACertFile)); err != nil {
					t.Fatal(err)
				}
				return dir
			},
			run: func(dir string, reserve ReserveFunc, clock *pkitest.Clock) (made, error) {
				a, _, err := LoadOrCreate(dir, InitOptions{ReserveRA: reserve}, clock)
				if err != nil {
					return made{}, err
				}
				return made{a.Issuer.ID, a.RA.Cert}, nil
			},
			unsigned: func(t *testing.T, dir string) {
				if _, err := os.Stat(filepath.Join(dir, "ca", RACertFile)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("ra.crt after a failed reservation: %v, want none", err)
				}
			},
		},
		{
			name: "rollover",
			setup: func(t *testing.T, clock *pkitest.Clock) string {
				dir, _ := newCA(t, InitOptions{}, clock)
				return dir
			},
			run: func(dir string, reserve ReserveFunc, clock *pkitest.Clock) (made, error) {
				next, ra, err := Rollover(dir, RolloverOptions{SwitchAt: clock.Now().Add(30 * day), ReserveRA: reserve}, clock)
				if err != nil {
					return made{}, err
				}
				return made{next.ID, ra.Cert}, nil
			},
			unsigned: func(t *testing.T, dir string) {
				if _, err := os.Stat(filepath.Join(dir, "ca", NextDir)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("DATA/ca/next after a failed reservation: %v, want none", err)
				}
				if dots := dotEntries(t, filepath.Join(dir, "ca")); len(dots) != 0 {
					t.Errorf("left behind: %v", dots)
				}
			},
		},
		{
			name: "renew-ra",
			setup: func(t *testing.T, clock *pkitest.Clock) string {
				dir, a := newCA(t, InitOptions{}, clock)
				clock.Set(a.RA.Cert.NotAfter.Add(-20 * day))
				return dir
			},
			run: func(dir string, reserve ReserveFunc, clock *pkitest.Clock) (made, error) {
				_, renewed, err := RenewRA(dir, RenewRAOptions{ReserveRA: reserve}, clock)
				if err != nil {
					return made{}, err
				}
				return made{issuerID(renewed.Chain[1]), renewed.Cert}, nil
			},
			unsigned: func(t *testing.T, dir string) {
				caDir := filepath.Join(dir, "ca")
				if _, err := os.Stat(filepath.Join(caDir, RetiredRADir)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("retired-ra after a failed reservation: %v, want none (the RA in service kept)", err)
				}
				if dots := dotEntries(t, caDir); len(dots) != 0 {
					t.Errorf("left behind: %v", dots)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := pkitest.NewClock(t0)
			dir := tc.setup(t, clock)
			var before []byte
			if b, err := os.ReadFile(filepath.Join(dir, "ca", RACertFile)); err == nil {
				before = b
			}

			failing := func(context.Context, string, string, []byte) (bool, error) {
				return false, errors.New("the store is away")
			}
			if _, err := tc.run(dir, failing, clock); err == nil || !strings.Contains(err.Error(), "the store is away") {
				t.Fatalf("with a failing reservation: %v, want its error", err)
			}
			tc.unsigned(t, dir)
			if b, _ := os.ReadFile(filepath.Join(dir, "ca", RACertFile)); !bytes.Equal(b, before) {
				t.Error("ra.crt changed after a failed reservation")
			}

			type reservation struct {
				issuerID, serial string
				tbs              []byte
			}
			var got []reservation
			recording := func(_ context.Context, issuerID, serial string, tbs []byte) (bool, error) {
				got = append(got, reservation{issuerID, serial, tbs})
				return len(got) == 1, nil // the first serial drawn is taken
			}
			m, err := tc.run(dir, recording, clock)
			if err != nil {
				t.Fatalf("once the store answers: %v", err)
			}
			if len(got) != 2 || got[0].serial == got[1].serial {
				t.Fatalf("reservations: %+v, want a taken one and another serial", got)
			}
			r := got[1]
			if r.issuerID != m.issuerID || r.serial != m.ra.SerialNumber.Text(16) || !bytes.Equal(r.tbs, m.ra.RawTBSCertificate) {
				t.Errorf("reservation %s/%s, want %s/%s with the new RA's TBS", r.issuerID, r.serial, m.issuerID, m.ra.SerialNumber.Text(16))
			}
		})
	}
}
