package crl_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/crl"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/server"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// backupSQLite copies a live SQLite store as docs/deployment.md says
// (sqlite3's .backup; VACUUM INTO makes the same consistent copy).
func backupSQLite(t *testing.T, from, to string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+from+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`VACUUM INTO ?`, to); err != nil {
		t.Fatal(err)
	}
}

// A store restored from an older copy holds older CRLs: the node numbers
// its next CRL above the highest it published (RFC 5280 §5.2.3: a number
// is never reused), at once rather than serving the older one, and says
// the store is behind until then.
func TestRestoredStoreNeverReusesCRLNumbers(t *testing.T) {
	ctx := context.Background()
	f := fixture.New(t, fixture.Options{})
	issuer := f.Issuer()
	numbers := crl.NewNumbers(filepath.Join(t.TempDir(), crl.NumbersDir))
	update := func(p *crl.Publisher) *crl.Publisher {
		t.Helper()
		f.Clock.Advance(time.Second)
		if err := p.Update(ctx); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var served []int64
	serve := func(p *crl.Publisher) []string {
		t.Helper()
		list := parseCRL(t, mustCRL(t, p, issuer.ID), issuer.Cert)
		served = append(served, list.Number.Int64())
		var serials []string
		for _, e := range list.RevokedCertificateEntries {
			serials = append(serials, e.SerialNumber.Text(16))
		}
		return serials
	}

	p := update(crl.New(f.Store, f.Authority, f.Clock, f.Log, crl.Config{Numbers: numbers}))
	serve(p)
	a, _ := f.Issue(t, "a")
	backup := filepath.Join(t.TempDir(), "bk.db")
	backupSQLite(t, filepath.Join(f.Dir, "scepter.db"), backup)
	f.Revoke(t, a, 1)
	update(p)
	if got := serve(p); len(got) != 1 {
		t.Fatalf("after revoking a: CRL lists %v", got)
	}
	if n, err := numbers.Get(issuer.ID); err != nil || n != 2 {
		t.Fatalf("recorded number %d (%v), want 2", n, err)
	}

	// Stopped, the store restored from the copy, started again.
	restored, err := sqlite.Open(ctx, backup)
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	p = crl.New(restored, f.Authority, f.Clock, f.Log, crl.Config{Numbers: numbers})
	behind, err := p.StoreBehind(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(behind) != 1 || behind[0].Issuer.ID != issuer.ID || behind[0].Stored != 1 || behind[0].Published != 2 {
		t.Fatalf("StoreBehind of the restored store: %+v, want the issuer at 1 of 2", behind)
	}
	update(p)
	if got := serve(p); len(got) != 0 {
		t.Errorf("restored store: CRL lists %v, want nothing (the revocation is lost with the copy)", got)
	}
	// The lost revocation made again.
	if _, _, err := restored.RevokeCertificate(ctx, issuer.ID, a.SerialNumber.Text(16), 1, f.Clock.Now(),
		pki.AuditEvent{Type: pki.EventRevoked, Actor: "test", Outcome: "success"}); err != nil {
		t.Fatal(err)
	}
	update(p)
	if got := serve(p); len(got) != 1 || got[0] != a.SerialNumber.Text(16) {
		t.Errorf("revoked again: CRL lists %v, want a", got)
	}
	for i := 1; i < len(served); i++ {
		if served[i] <= served[i-1] {
			t.Fatalf("CRL numbers served: %v; want each above the one before", served)
		}
	}
	if behind, err := p.StoreBehind(ctx); err != nil || len(behind) != 0 {
		t.Errorf("StoreBehind once a CRL is numbered above the mark: %+v, %v", behind, err)
	}
}

// The numbers file: written whole, read back, a damaged one named with
// what to write, an issuer ID that is no hex SHA-256 refused.
func TestNumbers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), crl.NumbersDir)
	n := crl.NewNumbers(dir)
	id := strings.Repeat("ab", 32)
	if v, err := n.Get(id); err != nil || v != 0 {
		t.Fatalf("none yet: %d, %v", v, err)
	}
	if err := n.Put(id, 41); err != nil {
		t.Fatal(err)
	}
	if v, err := n.Get(id); err != nil || v != 41 {
		t.Fatalf("after Put(41): %d, %v", v, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, id)); err != nil || string(b) != "41\n" {
		t.Fatalf("file: %q, %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(dir, id), []byte("forty"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Get(id); err == nil || !strings.Contains(err.Error(), "decimal") {
		t.Errorf("damaged file: %v", err)
	}
	for _, bad := range []string{"../x", strings.Repeat("AB", 32), "ab", ""} {
		if err := n.Put(bad, 1); err == nil {
			t.Errorf("Put(%q) accepted", bad)
		}
	}
}

// A mark near the int64 limit (a damaged or mistyped file) is refused,
// naming the file and what to write, rather than wrapping the next
// number round so that no CRL is ever published again; a mark at the
// bound leaves no next number, and Update says so instead of wrapping.
func TestNumbersBound(t *testing.T) {
	ctx := context.Background()
	f := fixture.New(t, fixture.Options{})
	issuer := f.Issuer()
	dir := filepath.Join(t.TempDir(), crl.NumbersDir)
	numbers := crl.NewNumbers(dir)
	for _, tc := range []struct {
		mark string
		ok   bool
	}{
		{"9223372036854775807", false},
		{"9223372036854775806", false},
		{strconv.FormatInt(crl.MaxNumber+1, 10), false},
		{strconv.FormatInt(crl.MaxNumber, 10), true},
		{"12", true},
	} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, issuer.ID), []byte(tc.mark+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := numbers.Get(issuer.ID)
		if tc.ok && err != nil {
			t.Errorf("mark %s: %v", tc.mark, err)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), filepath.Join(dir, issuer.ID)) || !strings.Contains(err.Error(), "write the highest CRL number")) {
			t.Errorf("mark %s: %v, want it refused naming the file and what to write", tc.mark, err)
		}
	}
	if err := numbers.Put(issuer.ID, crl.MaxNumber); err != nil {
		t.Fatal(err)
	}
	p := crl.New(f.Store, f.Authority, f.Clock, f.Log, crl.Config{Numbers: numbers})
	if err := p.Update(ctx); err == nil || !strings.Contains(err.Error(), "no CRL number follows") {
		t.Errorf("Update above the last number: %v", err)
	}
	if _, err := f.Store.LatestCRL(ctx, issuer.ID); err == nil {
		t.Error("a CRL was stored above the last number")
	}
}

// The root's CRL is signed by hand (scepter ca root crl), which keeps its
// highest number in Numbers too. On a store restored from a copy older
// than root CRL 2, RootsBehind names the root, and the handler serves no
// root CRL (CRL 1 would unlist what 2 revoked) until one numbered above 2
// is stored.
func TestRestoredRootCRLIsNotServed(t *testing.T) {
	ctx := context.Background()
	f := fixture.New(t, fixture.Options{})
	numbers := crl.NewNumbers(filepath.Join(t.TempDir(), crl.NumbersDir))
	root, err := ca.RootIssuer(f.Dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(st interface {
		LatestCRL(context.Context, string) (*store.CRL, error)
		PutCRL(context.Context, store.CRL, int) error
	}) int64 {
		t.Helper()
		prev, err := st.LatestCRL(ctx, root.ID)
		if errors.Is(err, store.ErrNotFound) {
			prev, err = nil, nil
		}
		if err != nil {
			t.Fatal(err)
		}
		mark, err := numbers.Get(root.ID)
		if err != nil {
			t.Fatal(err)
		}
		f.Clock.Advance(time.Second)
		signed, _, _, err := crl.SignRootCRLAbove(root, prev, mark, nil, f.Clock.Now(), crl.DefaultRootValidity)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.PutCRL(ctx, *signed, 10); err != nil {
			t.Fatal(err)
		}
		if err := numbers.Put(root.ID, signed.Number); err != nil {
			t.Fatal(err)
		}
		return signed.Number
	}
	sign(f.Store)
	backup := filepath.Join(t.TempDir(), "bk.db")
	backupSQLite(t, filepath.Join(f.Dir, "scepter.db"), backup)
	sign(f.Store)

	restored, err := sqlite.Open(ctx, backup)
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	p := crl.New(restored, f.Authority, f.Clock, f.Log, crl.Config{Numbers: numbers})
	behind, err := p.RootsBehind(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(behind) != 1 || behind[0].ID != root.ID || behind[0].Stored != 1 || behind[0].Signed != 2 || !behind[0].Root.Equal(root.Cert) {
		t.Fatalf("RootsBehind of the restored store: %+v, want the root at 1 of 2", behind)
	}
	h, err := server.PlainMux(server.Handlers{CRL: crl.NewHandler(p, f.Authority)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	get := func() (*http.Response, []byte) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/crl/" + root.ID + ".crl")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	if resp, body := get(); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(string(body), "scepter ca root crl --store-restored") {
		t.Errorf("the root CRL of the restored store: %d, Retry-After %q, %q; want 503 naming the command", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}

	// SCEP GetCRL for the root serves none either (r54).
	if _, err := p.RootCRL(ctx, root.ID); pki.ErrorCode(err) != pki.EUnavailable || !strings.Contains(pki.ErrorMessage(err), "scepter ca root crl --store-restored") {
		t.Errorf("RootCRL of the restored store: %v, want unavailable naming the command", err)
	}

	// Signed again, above the mark: served once the store is read again.
	if n := sign(restored); n != 3 {
		t.Fatalf("root CRL %d signed on the restored store, want 3", n)
	}
	f.Clock.Advance(11 * time.Second)
	resp, body := get()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the root CRL signed above the mark: %d %q", resp.StatusCode, body)
	}
	if list := parseCRL(t, body, f.Authority.Root); list.Number.Int64() != 3 {
		t.Errorf("the root CRL served: number %d, want 3", list.Number)
	}
	if behind, err := p.RootsBehind(ctx); err != nil || len(behind) != 0 {
		t.Errorf("RootsBehind once root CRL 3 is stored: %+v, %v", behind, err)
	}
	if der, err := p.RootCRL(ctx, root.ID); err != nil || parseCRL(t, der, f.Authority.Root).Number.Int64() != 3 {
		t.Errorf("RootCRL once root CRL 3 is stored: %v", err)
	}
}
