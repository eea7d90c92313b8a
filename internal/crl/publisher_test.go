package crl_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
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

func parseCRL(t testing.TB, der []byte, issuer *x509.Certificate) *x509.RevocationList {
	t.Helper()
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := list.CheckSignatureFrom(issuer); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	return list
}

func current(t testing.TB, p *crl.Publisher, issuerID string) *x509.RevocationList {
	t.Helper()
	der, err := p.CurrentCRL(context.Background(), issuerID)
	if err != nil {
		t.Fatal(err)
	}
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func TestPublisher(t *testing.T) {
	ctx := context.Background()
	f := fixture.New(t, fixture.Options{})
	issuer := f.Issuer()
	var states []map[string]int64
	p := crl.New(f.Store, f.Authority, f.Clock, f.Log, crl.Config{Validity: 24 * time.Hour,
		OnState: func(s map[string]int64) { states = append(states, s) }})
	update := func() {
		t.Helper()
		if err := p.Update(ctx); err != nil {
			t.Fatal(err)
		}
	}
	update()
	first := parseCRL(t, mustCRL(t, p, issuer.ID), issuer.Cert)
	if first.Number.Int64() != 1 || len(first.RevokedCertificateEntries) != 0 ||
		!first.ThisUpdate.Equal(fixture.Start.Add(-time.Minute)) || !first.NextUpdate.Equal(fixture.Start.Add(24*time.Hour)) {
		t.Fatalf("first CRL: number %v, %d entries, %v to %v", first.Number, len(first.RevokedCertificateEntries), first.ThisUpdate, first.NextUpdate)
	}
	if len(states) != 1 {
		t.Errorf("OnState called %d times, want 1", len(states))
	}

	// Nothing changed: no new CRL.
	f.Clock.Advance(time.Minute)
	update()
	if n := current(t, p, issuer.ID).Number.Int64(); n != 1 {
		t.Errorf("CRL %d after an update with nothing to do, want 1", n)
	}

	a, _ := f.Issue(t, "a")
	b, _ := f.Issue(t, "b")
	f.Revoke(t, a, 1)
	f.Revoke(t, b, 0)
	update()
	list := parseCRL(t, mustCRL(t, p, issuer.ID), issuer.Cert)
	if list.Number.Int64() != 2 || len(list.RevokedCertificateEntries) != 2 {
		t.Fatalf("after two revocations: CRL %v with %d entries, want 2 with 2", list.Number, len(list.RevokedCertificateEntries))
	}
	for _, e := range list.RevokedCertificateEntries {
		want := map[string]int{a.SerialNumber.String(): 1, b.SerialNumber.String(): 0}[e.SerialNumber.String()]
		if e.ReasonCode != want || !e.RevocationTime.Equal(f.Clock.Now().Truncate(time.Second)) {
			t.Errorf("entry %x: reason %d at %v, want %d at %v", e.SerialNumber, e.ReasonCode, e.RevocationTime, want, f.Clock.Now())
		}
	}
	// Reason unspecified is left out of its entry (RFC 5280 §5.3.1).
	for _, e := range list.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(b.SerialNumber) == 0 && len(e.Extensions) != 0 {
			t.Error("the unspecified reason was written into the entry")
		}
	}

	// Halfway to nextUpdate: a new CRL, same entries.
	f.Clock.Advance(12 * time.Hour)
	update()
	if list := current(t, p, issuer.ID); list.Number.Int64() != 3 || len(list.RevokedCertificateEntries) != 2 {
		t.Errorf("at half its validity: CRL %v with %d entries, want 3 with 2", list.Number, len(list.RevokedCertificateEntries))
	}

	// A revoked certificate leaves the CRL once a CRL issued after its
	// expiry listed it (TestExpiredEntryStaysUntilACRLBeyondItsEnd).
	f.Clock.Advance(366 * 24 * time.Hour)
	update()
	if list := current(t, p, issuer.ID); len(list.RevokedCertificateEntries) != 2 {
		t.Errorf("the first CRL after the expiry lists %d entries, want 2", len(list.RevokedCertificateEntries))
	}
	f.Clock.Advance(12 * time.Hour)
	update()
	if list := current(t, p, issuer.ID); len(list.RevokedCertificateEntries) != 0 {
		t.Errorf("expired certificates still listed: %d entries", len(list.RevokedCertificateEntries))
	}
}

func mustCRL(t testing.TB, p *crl.Publisher, issuerID string) []byte {
	t.Helper()
	der, err := p.CurrentCRL(context.Background(), issuerID)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// Two nodes (two publishers, each with its own store handle on one
// database) update at once, many times: CRL numbers never repeat or go
// back, and both serve the newest.
func TestTwoNodes(t *testing.T) {
	ctx := context.Background()
	f := fixture.New(t, fixture.Options{})
	issuer := f.Issuer()
	other, err := sqlite.Open(ctx, filepath.Join(f.Dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	nodes := []*crl.Publisher{
		crl.New(f.Store, f.Authority, f.Clock, f.Log, crl.Config{}),
		crl.New(other, f.Authority, f.Clock, f.Log, crl.Config{}),
	}
	for round := range 10 {
		// A second per round: a CRL newer than another has a later
		// thisUpdate (TestSameSecondRevocationsNeverAnswered304).
		f.Clock.Advance(time.Second)
		cert, _ := f.Issue(t, "r")
		f.Revoke(t, cert, 1)
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := n.Update(ctx); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		var numbers []int64
		for _, n := range nodes {
			// A node that lost the race serves the winner's CRL after its
			// next update at the latest.
			if err := n.Update(ctx); err != nil {
				t.Fatal(err)
			}
			list := current(t, n, issuer.ID)
			if len(list.RevokedCertificateEntries) != round+1 {
				t.Errorf("round %d: a node serves %d entries, want %d", round, len(list.RevokedCertificateEntries), round+1)
			}
			numbers = append(numbers, list.Number.Int64())
		}
		if numbers[0] != numbers[1] {
			t.Errorf("round %d: the nodes serve CRLs %v", round, numbers)
		}
		stored, err := f.Store.LatestCRL(ctx, issuer.ID)
		if err != nil || stored.Number != numbers[0] {
			t.Errorf("round %d: store's newest is %v (%v), nodes serve %d", round, stored, err, numbers[0])
		}
	}
}

// countingStore counts the store's newest-CRL reads, whole and of the
// number alone.
type countingStore struct {
	crl.Store
	latest, numbers atomic.Int64
}

func (s *countingStore) LatestCRLNumber(ctx context.Context, issuerID string) (int64, error) {
	s.numbers.Add(1)
	return s.Store.LatestCRLNumber(ctx, issuerID)
}

func (s *countingStore) LatestCRL(ctx context.Context, issuerID string) (*store.CRL, error) {
	s.latest.Add(1)
	return s.Store.LatestCRL(ctx, issuerID)
}

// Node B, started after a restore with a mark above the store's newest,
// publishes a higher CRL number without any revocation: node A, which
// holds an older CRL and sees no revocation counter move, serves B's after
// its next update (not at its half-validity refresh), records its number,
// and numbers its own next CRL above it. It reads the store's newest CRL
// number once per issuer per update, the whole CRL only when it is newer,
// and never to serve one.
func TestNodeServesHigherNumberPublishedElsewhere(t *testing.T) {
	ctx := context.Background()
	f := fixture.New(t, fixture.Options{})
	issuer := f.Issuer()
	other, err := sqlite.Open(ctx, filepath.Join(f.Dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	numbersA := crl.NewNumbers(filepath.Join(t.TempDir(), crl.NumbersDir))
	numbersB := crl.NewNumbers(filepath.Join(t.TempDir(), crl.NumbersDir))
	stA := &countingStore{Store: f.Store}
	a := crl.New(stA, f.Authority, f.Clock, f.Log, crl.Config{Numbers: numbersA})
	b := crl.New(other, f.Authority, f.Clock, f.Log, crl.Config{Numbers: numbersB})
	update := func(p *crl.Publisher) {
		t.Helper()
		f.Clock.Advance(time.Second)
		if err := p.Update(ctx); err != nil {
			t.Fatal(err)
		}
	}

	update(a)
	cert, _ := f.Issue(t, "dev")
	f.Revoke(t, cert, 1)
	update(a)
	if n := current(t, a, issuer.ID).Number.Int64(); n != 2 {
		t.Fatalf("A serves CRL %d, want 2", n)
	}
	before, err := f.Store.RevocationState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := numbersB.Put(issuer.ID, 4); err != nil { // B published #4 before the restore
		t.Fatal(err)
	}
	update(b)
	if n := current(t, b, issuer.ID).Number.Int64(); n != 5 {
		t.Fatalf("B serves CRL %d, want 5", n)
	}
	if after, err := f.Store.RevocationState(ctx); err != nil || after[issuer.ID] != before[issuer.ID] {
		t.Fatalf("revocation counter moved: %v to %v (%v)", before, after, err)
	}

	reads, numberReads := stA.latest.Load(), stA.numbers.Load()
	update(a)
	if got := stA.numbers.Load() - numberReads; got != int64(len(f.Authority.Issuers())) {
		t.Errorf("%d newest-CRL-number reads in one update, want one per issuer (%d)", got, len(f.Authority.Issuers()))
	}
	if got := stA.latest.Load() - reads; got != 1 {
		t.Errorf("%d whole-CRL reads in the update after B published, want 1 (B's)", got)
	}
	// With nothing new, an update reads numbers only, never a whole CRL.
	reads = stA.latest.Load()
	update(a)
	if got := stA.latest.Load() - reads; got != 0 {
		t.Errorf("%d whole-CRL reads in an update with nothing new, want 0", got)
	}
	list := parseCRL(t, mustCRL(t, a, issuer.ID), issuer.Cert)
	if list.Number.Int64() != 5 || len(list.RevokedCertificateEntries) != 1 {
		t.Fatalf("A's next update: serves CRL %v with %d entries, want B's 5 with 1", list.Number, len(list.RevokedCertificateEntries))
	}
	reads = stA.latest.Load()
	for range 3 {
		mustCRL(t, a, issuer.ID)
	}
	if got := stA.latest.Load() - reads; got != 0 {
		t.Errorf("serving the CRL read the store %d times", got)
	}
	if n, err := numbersA.Get(issuer.ID); err != nil || n != 5 {
		t.Errorf("A recorded number %d (%v), want 5", n, err)
	}

	second, _ := f.Issue(t, "dev2")
	f.Revoke(t, second, 1)
	update(a)
	if list := current(t, a, issuer.ID); list.Number.Int64() != 6 || len(list.RevokedCertificateEntries) != 2 {
		t.Errorf("A's own next CRL: %v with %d entries, want 6 with 2", list.Number, len(list.RevokedCertificateEntries))
	}
}

func TestHandler(t *testing.T) {
	ctx := context.Background()
	f := fixture.New(t, fixture.Options{})
	issuer := f.Issuer()
	p := crl.New(f.Store, f.Authority, f.Clock, f.Log, crl.Config{})
	h, err := server.PlainMux(server.Handlers{CRL: crl.NewHandler(p, f.Authority)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	get := func(path string, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	// Before the first CRL exists (a node started a moment ago).
	if resp, _ := get("/crl/"+issuer.ID+".crl", nil); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("no CRL yet: %d, want 503 with Retry-After", resp.StatusCode)
	}
	// The root's CRL is signed by hand (scepter ca root crl): until one
	// is, 404 with the reason and the command, not a 503 that asks to try
	// again.
	root := sha256.Sum256(f.Authority.Root.Raw)
	rootCRL := "/crl/" + hex.EncodeToString(root[:]) + ".crl"
	checkRootCRL := func(when string) {
		t.Helper()
		resp, body := get(rootCRL, nil)
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Retry-After") != "" ||
			!strings.Contains(string(body), "root CA has published no CRL yet: the server never signs one, even with the root key in its data directory") || !strings.Contains(string(body), "scepter ca root crl") ||
			!strings.Contains(string(body), "strictcrlpolicy=ifuri") {
			t.Errorf("the root's CRL %s: %d, Retry-After %q, %q; want 404 saying why", when, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	checkRootCRL("before the first CRL")
	if err := p.Update(ctx); err != nil {
		t.Fatal(err)
	}
	checkRootCRL("after the first CRL")
	resp, body := get("/crl/"+issuer.ID+".crl", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pkix-crl" || resp.Header.Get("ETag") == "" ||
		resp.Header.Get("Last-Modified") == "" || resp.Header.Get("Cache-Control") == "" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	parseCRL(t, body, issuer.Cert)
	if resp, _ := get("/crl/"+issuer.ID+".crl", map[string]string{"If-None-Match": resp.Header.Get("ETag")}); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", resp.StatusCode)
	}
	resp, body = get("/ca/"+issuer.ID+".crt", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pkix-cert" || !bytes.Equal(body, issuer.Cert.Raw) {
		t.Errorf("caIssuers: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp, body := get("/ca/"+hex.EncodeToString(root[:])+".crt", nil); resp.StatusCode != 200 || !bytes.Equal(body, f.Authority.Root.Raw) {
		t.Errorf("root certificate: %d", resp.StatusCode)
	}
	// Once signed and stored, every node serves it (after at most ten
	// seconds: it is read from the store again no sooner).
	rootIssuer, err := ca.RootIssuer(f.Dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	signed, _, _, err := crl.SignRootCRL(rootIssuer, nil, nil, f.Clock.Now(), crl.DefaultRootValidity)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Store.PutCRL(ctx, *signed, 10); err != nil {
		t.Fatal(err)
	}
	checkRootCRL("signed a moment ago, before this node reads the store again")
	f.Clock.Advance(11 * time.Second)
	resp, body = get(rootCRL, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pkix-crl" || resp.Header.Get("ETag") == "" {
		t.Fatalf("the root's CRL once signed: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	if list := parseCRL(t, body, f.Authority.Root); list.Number.Int64() != 1 || len(list.RevokedCertificateEntries) != 0 {
		t.Errorf("the root's CRL: number %d, %d entries", list.Number, len(list.RevokedCertificateEntries))
	}
	for _, path := range []string{"/crl/" + hex.EncodeToString(root[:16]) + ".crl", "/crl/" + issuer.ID, "/crl/" + issuer.ID[:63] + "G.crl",
		"/crl/../etc/passwd", "/ca/" + issuer.ID + ".crl", "/crl/" + hex.EncodeToString(make([]byte, 32)) + ".crl"} {
		if resp, _ := get(path, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, resp.StatusCode)
		}
	}
}

// Across a CA rollover every issuer has its CRL: the next CA's before the
// switch, the previous CA's after it, with its revocations.
func TestRolloverIssuersEachHaveACRL(t *testing.T) {
	ctx := context.Background()
	f := fixture.New(t, fixture.Options{})
	old := f.Issuer()
	oldCert, _ := f.Issue(t, "before-rollover")
	if _, _, err := ca.Rollover(f.Dir, ca.RolloverOptions{SwitchAt: f.Clock.Now().Add(time.Hour)}, f.Clock); err != nil {
		t.Fatal(err)
	}
	if err := f.Authority.Reload(f.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	next, _, ok := f.Authority.Next(f.Clock.Now())
	if !ok {
		t.Fatal("no next CA after the rollover")
	}
	p := crl.New(f.Store, f.Authority, f.Clock, f.Log, crl.Config{})
	if err := p.Update(ctx); err != nil {
		t.Fatal(err)
	}
	parseCRL(t, mustCRL(t, p, next.ID), next.Cert)
	f.Clock.Advance(2 * time.Hour)
	if err := f.Authority.Reload(f.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	if active := f.Issuer(); active.ID != next.ID {
		t.Fatal("the next CA did not take over")
	}
	newCert, _ := f.Issue(t, "after-rollover")
	for _, c := range []struct {
		cert   *x509.Certificate
		issuer string
	}{{oldCert, old.ID}, {newCert, next.ID}} {
		if _, _, err := f.Store.RevokeCertificate(ctx, c.issuer, c.cert.SerialNumber.Text(16), 1, f.Clock.Now(),
			pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Update(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cert   *x509.Certificate
		issuer *x509.Certificate
		id     string
	}{{oldCert, old.Cert, old.ID}, {newCert, next.Cert, next.ID}} {
		list := parseCRL(t, mustCRL(t, p, c.id), c.issuer)
		if len(list.RevokedCertificateEntries) != 1 || list.RevokedCertificateEntries[0].SerialNumber.Cmp(c.cert.SerialNumber) != 0 {
			t.Errorf("CRL of %s: %d entries, want the one revoked certificate", c.issuer.Subject, len(list.RevokedCertificateEntries))
		}
	}
}

// Two revocations within one second (two API calls in a row) must not give
// two CRLs with the same thisUpdate, which is their Last-Modified: a cache
// revalidating its copy of the first with If-Modified-Since would be told
// 304 and keep a CRL without the second revocation. The second CRL takes
// the second after the first's (backdated) thisUpdate; a clock set back far
// does not stop publication.
func TestSameSecondRevocationsNeverAnswered304(t *testing.T) {
	ctx := context.Background()
	f := fixture.New(t, fixture.Options{})
	issuer := f.Issuer()
	p := crl.New(f.Store, f.Authority, f.Clock, f.Log, crl.Config{})
	h, err := server.PlainMux(server.Handlers{CRL: crl.NewHandler(p, f.Authority)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	path := srv.URL + "/crl/" + issuer.ID + ".crl"
	update := func() {
		t.Helper()
		if err := p.Update(ctx); err != nil {
			t.Fatal(err)
		}
	}
	get := func(ifModifiedSince string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, path, nil)
		if ifModifiedSince != "" {
			req.Header.Set("If-Modified-Since", ifModifiedSince)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}

	f.Clock.Advance(100 * time.Millisecond)
	update()
	first, firstDER := get("")
	lastModified := first.Header.Get("Last-Modified")

	for i, step := range []time.Duration{200 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond} {
		cert, _ := f.Issue(t, "same-second")
		f.Revoke(t, cert, 1)
		f.Clock.Advance(step)
		update()
		resp, _ := get(lastModified)
		if cur, _ := p.Current(issuer.ID); resp.StatusCode == http.StatusNotModified && !bytes.Equal(cur.DER, firstDER) {
			t.Fatalf("revocation %d: CRL %d answered 304 to If-Modified-Since of CRL 1 (%s)", i+1, cur.Number, lastModified)
		}
	}
	// The next second publishes all three.
	f.Clock.Advance(time.Second)
	update()
	resp, body := get(lastModified)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after the second passed: %d to If-Modified-Since of CRL 1, want 200", resp.StatusCode)
	}
	firstThisUpdate := parseCRL(t, firstDER, issuer.Cert).ThisUpdate
	if list := parseCRL(t, body, issuer.Cert); len(list.RevokedCertificateEntries) != 3 || !list.ThisUpdate.After(firstThisUpdate) {
		t.Errorf("after the second passed: %d entries at %v, want 3 after %v", len(list.RevokedCertificateEntries), list.ThisUpdate, firstThisUpdate)
	}

	// A clock set back an hour still publishes a revocation, and a cache
	// revalidating by the date of the CRL before it is not told 304,
	// although the new one's thisUpdate is earlier: dates do not decide,
	// the ETag (which names the CRL number) does.
	latest := resp.Header.Get("Last-Modified")
	f.Clock.Advance(-time.Hour)
	cert, _ := f.Issue(t, "clock-back")
	f.Revoke(t, cert, 1)
	update()
	if list := current(t, p, issuer.ID); len(list.RevokedCertificateEntries) != 4 {
		t.Errorf("clock set back: %d entries, want 4", len(list.RevokedCertificateEntries))
	}
	if resp, body := get(latest); resp.StatusCode != http.StatusOK || len(parseCRL(t, body, issuer.Cert).RevokedCertificateEntries) != 4 {
		t.Errorf("clock set back: %d to If-Modified-Since of the CRL before, want 200 with 4 entries", resp.StatusCode)
	}
}

// A CRL's thisUpdate is backdated a minute, so a relying party whose clock
// is a little behind does not find a fresh CRL not yet valid; its
// nextUpdate still counts from its publication. The backdate never takes it
// before a revocation it lists (RFC 5280 §5.1.2.4), nor before a hold was
// lifted (a CRL without the entry, dated before the unhold, would say the
// certificate was not held while it was), nor before its predecessor's
// thisUpdate; it is never in the future.
func TestThisUpdateBackdated(t *testing.T) {
	ctx := context.Background()
	f := fixture.New(t, fixture.Options{})
	issuer := f.Issuer()
	const validity = 24 * time.Hour
	p := crl.New(f.Store, f.Authority, f.Clock, f.Log, crl.Config{Validity: validity})
	revokeAt := func(cert *x509.Certificate, reason int, at time.Time) {
		t.Helper()
		if _, _, err := f.Store.RevokeCertificate(ctx, issuer.ID, cert.SerialNumber.Text(16), reason, at,
			pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
			t.Fatal(err)
		}
	}
	revoke := func(reason int) *x509.Certificate {
		cert, _ := f.Issue(t, "backdate")
		revokeAt(cert, reason, f.Clock.Now())
		return cert
	}
	var held, heldLong *x509.Certificate
	var unheldAt time.Time // the last unhold
	unhold := func(cert *x509.Certificate) {
		t.Helper()
		unheldAt = f.Clock.Now()
		if _, _, err := f.Store.UnholdCertificate(ctx, issuer.ID, cert.SerialNumber.Text(16), unheldAt,
			pki.AuditEvent{Type: pki.EventUnheld}); err != nil {
			t.Fatal(err)
		}
	}
	var prev *x509.RevocationList
	for _, step := range []struct {
		name string
		// advance goes before do; delay between do and the update.
		advance time.Duration
		do      func()
		delay   time.Duration
		// waits, when set, is how long the CRL waits for the clock to pass
		// a revocation ahead of it, or its predecessor's second: no new
		// CRL until then.
		waits time.Duration
		// wantBehind is how far thisUpdate is behind the publication.
		wantBehind time.Duration
	}{
		{name: "first CRL: a full minute", wantBehind: time.Minute},
		{name: "revoked 10s before the publication: the revocation time", advance: 10 * time.Second, do: func() { revoke(1) },
			delay: 10 * time.Second, wantBehind: 10 * time.Second},
		{name: "revoked 2 minutes before: a full minute", advance: 5 * time.Minute, do: func() { revoke(1) },
			delay: 2 * time.Minute, wantBehind: time.Minute},
		{name: "held and published at once: the publication", advance: time.Minute,
			do: func() { held, heldLong = revoke(6), revoke(6) }, wantBehind: 0}, // 6: certificateHold
		{name: "revoked 300ms into the second of its predecessor's thisUpdate: waits for the next second",
			advance: 300 * time.Millisecond, do: func() { revoke(1) }, waits: time.Second, wantBehind: 0},
		{name: "released 10s later (.3s into a second), an entry fewer: waits for the second after the unhold",
			advance: 10 * time.Second, do: func() { unhold(held) }, waits: time.Second, wantBehind: 0},
		{name: "released, published 20s later: the second after the unhold", advance: 10 * time.Second,
			do: func() { unhold(heldLong) }, delay: 20 * time.Second, wantBehind: 19 * time.Second},
		{name: "halfway to nextUpdate: a full minute", advance: validity / 2, wantBehind: time.Minute},
		{name: "revoked 3s ahead (by a node whose clock runs ahead): waits, then the revocation time", advance: time.Minute,
			do: func() {
				cert, _ := f.Issue(t, "ahead")
				revokeAt(cert, 1, f.Clock.Now().Add(3*time.Second))
			}, waits: 3 * time.Second, wantBehind: 0},
		{name: "revoked an hour ahead (this clock set back): the publication", advance: time.Minute,
			do: func() {
				cert, _ := f.Issue(t, "far-ahead")
				revokeAt(cert, 1, f.Clock.Now().Add(time.Hour))
			}, wantBehind: 0},
	} {
		f.Clock.Advance(step.advance)
		if step.do != nil {
			step.do()
		}
		f.Clock.Advance(step.delay)
		if err := p.Update(ctx); err != nil {
			t.Fatal(err)
		}
		if step.waits > 0 {
			if list := parseCRL(t, mustCRL(t, p, issuer.ID), issuer.Cert); list.Number.Cmp(prev.Number) != 0 {
				t.Errorf("%s: CRL %v published at once, with thisUpdate %v", step.name, list.Number, list.ThisUpdate)
			}
			f.Clock.Advance(step.waits)
			if err := p.Update(ctx); err != nil {
				t.Fatal(err)
			}
		}
		list := parseCRL(t, mustCRL(t, p, issuer.ID), issuer.Cert)
		published := f.Clock.Now().Truncate(time.Second)
		if got := published.Sub(list.ThisUpdate); got != step.wantBehind {
			t.Errorf("%s: thisUpdate %v is %v before the publication at %v, want %v", step.name, list.ThisUpdate, got, published, step.wantBehind)
		}
		if !list.NextUpdate.Equal(published.Add(validity)) {
			t.Errorf("%s: nextUpdate %v, want the publication + %v: %v", step.name, list.NextUpdate, validity, published.Add(validity))
		}
		if prev != nil && (list.Number.Cmp(prev.Number) <= 0 || !list.ThisUpdate.After(prev.ThisUpdate)) {
			t.Errorf("%s: CRL %v at %v does not follow CRL %v at %v", step.name, list.Number, list.ThisUpdate, prev.Number, prev.ThisUpdate)
		}
		if !unheldAt.After(published) && list.ThisUpdate.Before(unheldAt) {
			t.Errorf("%s: thisUpdate %v before the unhold at %v", step.name, list.ThisUpdate, unheldAt)
		}
		for _, e := range list.RevokedCertificateEntries {
			if e.RevocationTime.After(list.ThisUpdate) && !e.RevocationTime.After(published) {
				t.Errorf("%s: thisUpdate %v before the revocation of %x at %v", step.name, list.ThisUpdate, e.SerialNumber, e.RevocationTime)
			}
		}
		prev = list
	}
}

// The last CRLs before the issuing CA's end promise no CRL after it: an
// issuer outside its validity signs none.
func TestNextUpdateNotPastTheIssuersEnd(t *testing.T) {
	ctx := context.Background()
	f := fixture.New(t, fixture.Options{})
	issuer := f.Issuer()
	f.Clock.Set(issuer.Cert.NotAfter.Add(-6 * time.Hour))
	p := crl.New(f.Store, f.Authority, f.Clock, f.Log, crl.Config{Validity: 24 * time.Hour})
	if err := p.Update(ctx); err != nil {
		t.Fatal(err)
	}
	list := parseCRL(t, mustCRL(t, p, issuer.ID), issuer.Cert)
	if !list.NextUpdate.Equal(issuer.Cert.NotAfter.UTC().Truncate(time.Second)) {
		t.Errorf("nextUpdate %v, want the issuer's end %v", list.NextUpdate, issuer.Cert.NotAfter)
	}
}
