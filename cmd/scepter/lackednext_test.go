package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/cashare"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/est/estserver"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/scep/scepserver"
	"github.com/scepter/scepter/internal/server"
)

// A node that lacks the next CA the store schedules (its keys not imported
// yet) still announces the rollover and serves GetNextCACert from the
// store's certificates, signed by its current RA: behind a load balancer,
// nodes must not contradict one another.
func TestLackedNextCAIsServed(t *testing.T) {
	p := fixture.New(t, fixture.Options{})
	k := newRAKeeper(p.Service, p.Authority, p.Dir, p.Clock, slog.New(slog.DiscardHandler), "node-c")
	stored := p.Service.ActiveRA() // stands for the store's next RA
	lacked := &pki.RA{Cert: stored.Cert, Chain: stored.Chain}
	var lacking bool
	svc := scepService{Service: p.Service, ras: k, clock: p.Clock,
		lackedNext: func(time.Time) (*pki.RA, bool) { return lacked, lacking }}
	h, err := scepserver.New(svc, p.Clock, slog.New(slog.DiscardHandler), scepserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mux, err := server.PlainMux(server.Handlers{SCEP: h})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(op string) (int, string, []byte) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/scep?operation=" + op)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), body
	}

	if _, _, caps := get("GetCACaps"); strings.Contains(string(caps), "GetNextCACert") {
		t.Errorf("GetCACaps with no rollover anywhere: %q", caps)
	}
	if code, _, _ := get("GetNextCACert"); code != http.StatusNotFound {
		t.Errorf("GetNextCACert with no rollover anywhere: %d, want 404", code)
	}
	lacking = true
	if _, _, caps := get("GetCACaps"); !strings.Contains(string(caps), "GetNextCACert") {
		t.Errorf("GetCACaps while the store schedules a next CA this node lacks: %q", caps)
	}
	code, ctype, body := get("GetNextCACert")
	if code != 200 || ctype != "application/x-x509-next-ca-cert" || !bytes.Contains(body, stored.Cert.Raw) {
		t.Errorf("GetNextCACert while the store schedules a next CA this node lacks: %d %s, holds the RA: %v", code, ctype, bytes.Contains(body, stored.Cert.Raw))
	}
}

// Two nodes on one store, a rollover made on A whose next CA B lacks: B's
// EST /cacerts carries the next issuing CA from the store, and both nodes
// answer the same, as their GetNextCACert does.
func TestLackedNextCAIsInESTCACerts(t *testing.T) {
	ctx := context.Background()
	p := fixture.New(t, fixture.Options{})
	syncA := &cashare.Syncer{Store: p.Store, Authority: p.Authority, Clock: p.Clock, Node: "node-a", Log: p.Log}
	if err := syncA.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	_, authB, svcB := secondNode(t, p)
	syncB := &cashare.Syncer{Store: p.Store, Authority: authB, Clock: p.Clock, Node: "node-b", Log: p.Log}
	if err := syncB.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	cacerts := func(svc *enroll.Service, sync *cashare.Syncer) []byte {
		t.Helper()
		h := estserver.New(estService{Service: svc, lackedNext: sync.LackedNextCA, clock: p.Clock}, p.Log, estserver.Options{})
		mux := http.NewServeMux()
		for pattern, route := range h.Routes() {
			mux.Handle(pattern, route)
		}
		srv := httptest.NewTLSServer(mux)
		defer srv.Close()
		resp, err := srv.Client().Get(srv.URL + est.PathPrefix + est.OpCACerts)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/cacerts: %d %s", resp.StatusCode, body)
		}
		der, err := base64.StdEncoding.DecodeString(string(bytes.ReplaceAll(body, []byte("\r\n"), nil)))
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	before := cacerts(p.Service, syncA)

	next, _, err := cashare.Rollover(ctx, p.Store, p.Dir, ca.RolloverOptions{SwitchAt: p.Clock.Now().Add(100 * time.Second), GenerateKey: testKeys.Generate}, p.Clock, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Authority.Reload(p.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*cashare.Syncer{syncA, syncB} {
		if err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := syncB.LackedNextRA(p.Clock.Now()); !ok {
		t.Fatal("the test expects node B to lack the next CA")
	}
	onA, onB := cacerts(p.Service, syncA), cacerts(svcB, syncB)
	if !bytes.Contains(onA, next.Cert.Raw) || bytes.Equal(onA, before) {
		t.Fatal("node A's /cacerts lacks the next CA it holds")
	}
	if !bytes.Equal(onA, onB) {
		t.Errorf("during the rollover node B's /cacerts differs from node A's; holds the next CA: %v", bytes.Contains(onB, next.Cert.Raw))
	}
}
