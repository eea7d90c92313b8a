package admin

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
)

func TestNormalizeSerial(t *testing.T) {
	for in, want := range map[string]string{"0x0A:bc": "abc", "ABC": "abc", "00ff": "ff", "0XFF": "ff", " 1f ": "1f"} {
		got, err := NormalizeSerial(in)
		if err != nil || got != want {
			t.Errorf("NormalizeSerial(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "xyz", "0", "-1", "0x"} {
		if _, err := NormalizeSerial(bad); err == nil {
			t.Errorf("NormalizeSerial(%q) succeeded", bad)
		}
	}
}

func TestParseReason(t *testing.T) {
	for in, want := range map[string]int{"": 0, "unspecified": 0, "keyCompromise": 1, "KEYCOMPROMISE": 1, "cACompromise": 2,
		"affiliationChanged": 3, "superseded": 4, "cessationOfOperation": 5, "certificateHold": 6, "privilegeWithdrawn": 9,
		"0": 0, "1": 1, "6": 6, "9": 9} {
		got, err := ParseReason(in)
		if err != nil || got != want {
			t.Errorf("ParseReason(%q) = %d, %v; want %d", in, got, err, want)
		}
		if _, numeric := strconv.Atoi(in); numeric != nil && in != "" && in != "KEYCOMPROMISE" && ReasonName(want) != in {
			t.Errorf("ReasonName(%d) = %q, want %q", want, ReasonName(want), in)
		}
	}
	for _, bad := range []string{"removeFromCRL", "8", "compromised", "7", "11", "-1", "1.0", "0x1", "aACompromise", "AACOMPROMISE", "10", "010", "+10",
		"+1", "-0", " 1", "1 ", "\u0661", "0001"} {
		if _, err := ParseReason(bad); bad != "" && strings.Contains(bad, "10") && bad != "+10" && (err == nil || !strings.Contains(err.Error(), "attribute certificates")) {
			t.Errorf("ParseReason(%q) = %v, want the aACompromise reason", bad, err)
		}
		if _, err := ParseReason(bad); err == nil {
			t.Errorf("ParseReason(%q) succeeded", bad)
		}
	}
}

// racingStore runs another operator's change just before the revocation or
// unhold it wraps reaches the store: the race of two `certs` commands.
type racingStore struct {
	store.Store
	before func()
}

func (r racingStore) Revoke(ctx context.Context, issuerID, serialHex string, reason int, at time.Time, ev pki.AuditEvent) (store.Revocation, error) {
	r.before()
	return r.Store.Revoke(ctx, issuerID, serialHex, reason, at, ev)
}

func (r racingStore) UnholdCertificate(ctx context.Context, issuerID, serialHex string, at time.Time, ev pki.AuditEvent) (*pki.Certificate, bool, error) {
	r.before()
	return r.Store.UnholdCertificate(ctx, issuerID, serialHex, at, ev)
}

// The audit trail and the conflict message tell what the store's
// transaction found, not what was read before it.
func TestRevocationRaces(t *testing.T) {
	ctx := context.Background()
	const issuer, serial = "1111111111111111111111111111111111111111111111111111111111111111", "c0ffee"
	for _, tc := range []struct {
		name string
		// race is the other operator's command, after our read
		race       func(st store.Store, at time.Time) error
		act        func(svc *Service) error
		wantDetail string
		wantErr    string
	}{
		{
			name: "revoke raced by unhold: a fresh revocation",
			race: func(st store.Store, at time.Time) error {
				_, _, err := st.UnholdCertificate(ctx, issuer, serial, at, pki.AuditEvent{Type: pki.EventUnheld})
				return err
			},
			act: func(svc *Service) error {
				_, err := svc.Revoke(ctx, serial, "", 1, "cli:root")
				return err
			},
		},
		{
			name: "revoke of a hold, no race: the hold made permanent",
			race: func(store.Store, time.Time) error { return nil },
			act: func(svc *Service) error {
				_, err := svc.Revoke(ctx, serial, "", 1, "cli:root")
				return err
			},
			wantDetail: store.DetailHoldMadePermanent,
		},
		{
			name: "unhold raced by a permanent revocation: names its reason",
			race: func(st store.Store, at time.Time) error {
				_, _, err := st.RevokeCertificate(ctx, issuer, serial, 1, at, pki.AuditEvent{Type: pki.EventRevoked})
				return err
			},
			act: func(svc *Service) error {
				_, err := svc.Unhold(ctx, serial, "", "cli:root")
				return err
			},
			wantDetail: store.DetailHoldMadePermanent, // the racer's event
			wantErr:    "revoked for good (keyCompromise)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
			now := clock.Now()
			if err := st.RecordIssuance(ctx, store.Issuance{Now: now, Certificate: pki.Certificate{
				SerialHex: serial, IssuerID: issuer, Issuer: "CN=Test CA", Subject: "CN=device",
				NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), Status: pki.StatusValid,
				Profile: "default", Protocol: pki.ProtocolCLI, Source: pki.SourceIssued, KeyType: "p256",
				CreatedAt: now, DER: []byte{0x30, 0x03, 'd', 'e', 'r'},
			}}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := st.RevokeCertificate(ctx, issuer, serial, ReasonCertificateHold, now, pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
				t.Fatal(err)
			}
			racing := racingStore{Store: st, before: func() {
				if err := tc.race(st, now); err != nil {
					t.Fatalf("the racing command: %v", err)
				}
			}}
			err = tc.act(New(racing, clock, nil, nil, ""))
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("got error %v, want %q", err, tc.wantErr)
			}
			evs, err := st.ListAudit(ctx, store.AuditFilter{})
			if err != nil || len(evs) == 0 {
				t.Fatalf("audit: %v, %d events", err, len(evs))
			}
			if newest := evs[0]; newest.Type != pki.EventRevoked || newest.Detail != tc.wantDetail {
				t.Errorf("newest event %s %q, want %s %q", newest.Type, newest.Detail, pki.EventRevoked, tc.wantDetail)
			}
		})
	}
}

// The server's own certificates (protocol internal: SCEP RA, OCSP
// responder, HTTPS) cannot be put on hold: the server destroys the key of
// one revoked for any reason and replaces it, and an unhold would call
// valid a certificate without a key (r46). Another reason revokes them.
func TestNoHoldOnTheServersOwnCertificates(t *testing.T) {
	ctx := context.Background()
	const issuer = "1111111111111111111111111111111111111111111111111111111111111111"
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	now := clock.Now()
	for serial, c := range map[string]struct {
		profile  string
		protocol pki.Protocol
	}{"a1": {"scep-ra", pki.ProtocolInternal}, "a2": {"default", pki.ProtocolSCEP}} {
		if err := st.RecordIssuance(ctx, store.Issuance{Now: now, Certificate: pki.Certificate{
			SerialHex: serial, IssuerID: issuer, Issuer: "CN=Test CA", Subject: "CN=" + serial,
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), Status: pki.StatusValid,
			Profile: c.profile, Protocol: c.protocol, Source: pki.SourceIssued, KeyType: "p256",
			CreatedAt: now, DER: []byte{0x30, 0x03, 'd', 'e', serial[1]},
		}}); err != nil {
			t.Fatal(err)
		}
	}
	svc := New(st, clock, nil, nil, "")
	if _, err := svc.Revoke(ctx, "a1", "", ReasonCertificateHold, "cli:root"); pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(err.Error(), "cannot be put on hold") {
		t.Errorf("hold of the SCEP RA: %v, want a bad request", err)
	}
	if c, err := st.Certificate(ctx, issuer, "a1"); err != nil || c.Status != pki.StatusValid {
		t.Errorf("the RA after the refused hold: %+v, %v", c, err)
	}
	if _, err := svc.Revoke(ctx, "a1", "", 4, "cli:root"); err != nil {
		t.Errorf("the RA revoked as superseded: %v", err)
	}
	if _, err := svc.Revoke(ctx, "a2", "", ReasonCertificateHold, "cli:root"); err != nil {
		t.Errorf("hold of a device's certificate: %v", err)
	}
}

// The refusals naming a certificate give its serial in whole bytes, as
// the CLI, the console and the log show it (01c3, not the stored 1c3),
// whichever form was asked for.
func TestRevokeRefusalsShowTheSerialInWholeBytes(t *testing.T) {
	ctx := context.Background()
	const issuer = "2222222222222222222222222222222222222222222222222222222222222222"
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	now := clock.Now()
	for serial, c := range map[string]struct {
		profile  string
		protocol pki.Protocol
	}{"1c3": {"default", pki.ProtocolSCEP}, "abc": {"scep-ra", pki.ProtocolInternal}} {
		if err := st.RecordIssuance(ctx, store.Issuance{Now: now, Certificate: pki.Certificate{
			SerialHex: serial, IssuerID: issuer, Issuer: "CN=Test CA", Subject: "CN=" + serial,
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), Status: pki.StatusValid,
			Profile: c.profile, Protocol: c.protocol, Source: pki.SourceIssued, KeyType: "p256",
			CreatedAt: now, DER: []byte{0x30, 0x03, 'd', 'e', serial[1]},
		}}); err != nil {
			t.Fatal(err)
		}
	}
	svc := New(st, clock, nil, nil, "")
	if _, err := svc.Revoke(ctx, "01c3", "", 1, "cli:root"); err != nil {
		t.Fatal(err)
	}
	for _, asked := range []string{"01c3", "1c3", "01:C3"} {
		_, err := svc.Revoke(ctx, asked, "", 4, "cli:root")
		if pki.ErrorCode(err) != pki.EConflict || !strings.Contains(err.Error(), "certificate 01c3 is already revoked at ") {
			t.Errorf("revoke %s again, another reason: %v; want a conflict naming certificate 01c3", asked, err)
		}
	}
	_, err = svc.Revoke(ctx, "abc", "", ReasonCertificateHold, "cli:root")
	if pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(err.Error(), "certificate 0abc is one of the server's own") {
		t.Errorf("hold of the SCEP RA 0abc: %v; want a bad request naming certificate 0abc", err)
	}
}

// A serial two CAs issued is refused naming both and how to name one, in
// words for the command line and the API alike (r102 D2: the API was told
// to use --issuer); an issuer prefix then picks one.
func TestRevokeOfASerialTwoCAsIssued(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	now := clock.Now()
	for i, issuer := range []string{strings.Repeat("a", 64), strings.Repeat("b", 64)} {
		if err := st.RecordIssuance(ctx, store.Issuance{Now: now, Certificate: pki.Certificate{
			SerialHex: "1c3", IssuerID: issuer, Issuer: "CN=Test CA", Subject: "CN=dup",
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), Status: pki.StatusValid,
			Profile: "default", Protocol: pki.ProtocolSCEP, Source: pki.SourceIssued, KeyType: "p256",
			CreatedAt: now, DER: []byte{0x30, 0x03, 'd', 'u', byte('0' + i)},
		}}); err != nil {
			t.Fatal(err)
		}
	}
	svc := New(st, clock, nil, nil, "")
	_, err = svc.Revoke(ctx, "01c3", "", 1, "cli:root")
	if pki.ErrorCode(err) != pki.EConflict || !strings.Contains(err.Error(), "serial 01c3 was issued by 2 CAs (aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb)") ||
		!strings.Contains(err.Error(), "the API's issuer") {
		t.Errorf("revoke of a serial two CAs issued: %v", err)
	}
	if _, err := svc.Revoke(ctx, "01c3", "bbbb", 1, "cli:root"); err != nil {
		t.Errorf("revoke naming the issuer by a prefix: %v", err)
	}
}
