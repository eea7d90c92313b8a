package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestCrowdBeyondMaxConnsTakesTurns: three times more keep-alive clients
// than --max-conns, each enrolling over and over, over SCEP and over EST.
// Every connection is busy or about to be, so none may be closed under
// its client (a POST already sent is not sent again, and would be lost):
// the clients take turns through responses that ask them to close, and
// every enrollment succeeds.
func TestCrowdBeyondMaxConnsTakesTurns(t *testing.T) {
	e := startEST(t, estOpts{prepared: true, challenge: "crowd-takes-turns-0123", args: []string{"--rate-limit", "0", "--max-conns", "16"}})
	s := e.Server
	for _, proto := range []string{"scep", "est"} {
		args := []string{"--url", s.URL, "--ca-fingerprint", s.RootFingerprint()}
		if proto == "est" {
			args = []string{"--protocol", "est", "--url", e.HTTPS, "--cacert", e.CAFile("root.crt")}
		}
		r := run(t, runOpts{dir: t.TempDir()}, bin(t), append([]string{"bench", "--challenge", s.Challenge, "--key-type", "p256",
			"--count", "480", "--concurrency", "48", "--pool", "10", "--timeout", "60s", "--allow-failures", "--json", "--quiet"}, args...)...)
		var res benchResult
		if i := strings.Index(r.stdout, "{"); i < 0 || json.Unmarshal([]byte(r.stdout[i:]), &res) != nil {
			t.Fatalf("%s: bench --json:\n%s", proto, r)
		}
		t.Logf("%s: %d ok, %d failed %v", proto, res.OK, res.Failed, res.Failures)
		if res.OK != 480 || res.Failed != 0 || res.Duplicates != 0 || res.BadCerts != 0 {
			t.Errorf("%s: %d of 480 enrolled, %d failed %v (first: %v), %d duplicate serials, %d bad certificates",
				proto, res.OK, res.Failed, res.Failures, res.FirstErrors, res.Duplicates, res.BadCerts)
		}
	}
	code, body := metricsGet(t, http.DefaultClient, s.Base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	rotated := metricSample(fams, "scepter_http_connections_rotated_total", nil)
	closed := metricSample(fams, "scepter_http_connections_closed_total", nil)
	t.Logf("connections asked to close %v, closed outright %v", rotated, closed)
	if rotated <= 0 {
		t.Errorf("no response asked its client to close its connection (%v), though 48 clients shared 16 connections", rotated)
	}
}
