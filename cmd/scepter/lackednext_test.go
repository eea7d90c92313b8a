package main

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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
