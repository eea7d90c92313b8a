package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/postgres"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
)

// A command shows a store out of reach with its cause: `certs revoke` on
// a full disk printed only "temporarily unavailable, try again later",
// while the cause was in the error. A PostgreSQL URL's password stays
// out of it; refusals keep their client-safe message and internal errors
// are shown as they are.
func TestServiceErrorKeepsTheStoreCause(t *testing.T) {
	// A PostgreSQL server that is not there: a port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, pgErr := postgres.Open(ctx, "postgres://ca:s3cret@"+addr+"/ca?connect_timeout=1")
	if pki.ErrorCode(pgErr) != pki.EUnavailable {
		t.Fatalf("postgres.Open of a closed port: %v, want an unavailable store", pgErr)
	}

	full := fmt.Errorf("admin: revoke: %w", fmt.Errorf("%w: %w", store.ErrUnavailable, errors.New("sqlite: database or disk is full (13)")))
	tests := []struct {
		name    string
		err     error
		want    []string
		notWant []string
	}{
		{"full disk", full, []string{"temporarily unavailable (sqlite: database or disk is full (13)), try again later"}, nil},
		{"postgres down", pgErr, []string{"temporarily unavailable (", addr, "), try again later"}, []string{"s3cret"}},
		{"refusal", pki.Errorf(pki.ENotFound, "no certificate with serial 01"), []string{"no certificate with serial 01"}, []string{"not_found"}},
		{"unavailable with a message", pki.Errorf(pki.EUnavailable, "the issuing CA is not valid yet"), []string{"the issuing CA is not valid yet"}, nil},
		{"internal", errors.New("stored certificate 01: bad DER"), []string{"stored certificate 01: bad DER"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := serviceError(tt.err)
			msg := got.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not say %q", msg, w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(msg, w) {
					t.Errorf("%q says %q", msg, w)
				}
			}
			if !errors.Is(got, tt.err) || exitCode(got) != 1 {
				t.Errorf("serviceError(%v) = %v: want it wrapping the error, exit 1", tt.err, got)
			}
		})
	}
}

// `certs revoke` on a PostgreSQL store whose write fails as out of reach
// (a trigger raises a connection-class error, as a server losing its disk
// or its connection does) names the cause, and not the URL's password.
func TestCertsRevokeShowsWhyPostgresIsUnavailable(t *testing.T) {
	ctx := context.Background()
	u, err := url.Parse(pgtest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	// The test server trusts 127.0.0.1: any password is accepted.
	u.User = url.UserPassword(u.User.Username(), "s3cret")
	dbURL := u.String()
	st, err := postgres.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	now := pki.SystemClock{}.Now().UTC()
	if err := st.RecordIssuance(ctx, store.Issuance{Now: now, Certificate: pki.Certificate{
		SerialHex: "a1", IssuerID: strings.Repeat("1", 64), Issuer: "CN=Test CA", Subject: "CN=device-a1",
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), Status: pki.StatusValid,
		Profile: "default", Protocol: pki.ProtocolCLI, Source: pki.SourceIssued, KeyType: "p256",
		CreatedAt: now, DER: []byte{0x30, 0x03, 'd', 'e', 'r'},
	}}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE FUNCTION no_space() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = '08006'; END $$;
		CREATE TRIGGER no_space BEFORE UPDATE ON certificates FOR EACH ROW EXECUTE FUNCTION no_space()`); err != nil {
		t.Fatal(err)
	}

	e, _, errb := testEnv(nil)
	err = run(ctx, e, []string{"certs", "revoke", "a1", "--store", dbURL, "--data-dir", t.TempDir()})
	if exitCode(err) != 1 || !errors.Is(err, pki.ErrUnavailable) {
		t.Fatalf("certs revoke: %v (exit %d), want an unavailable store\n%s", err, exitCode(err), errb)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "temporarily unavailable (") || !strings.Contains(msg, "No space left on device") || !strings.HasSuffix(msg, "), try again later") {
		t.Errorf("certs revoke says %q: want the cause inside", msg)
	}
	if strings.Contains(msg+errb.String(), "s3cret") {
		t.Errorf("certs revoke shows the password: %q\n%s", msg, errb)
	}
}
