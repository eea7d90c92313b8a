package metrics_test

import (
	"context"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/metrics"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/server"
)

// env is a real CA, store and enrollment service whose outcomes a Metrics
// counts: "default" issues at once, "held" (a second service on the same
// CA and store) holds requests for approval.
type env struct {
	pki     *fixture.PKI
	m       *metrics.Metrics
	svc     *enroll.Service // default profile "default"
	held    *enroll.Service // default profile "held"
	handler http.Handler    // the plain listener's mux with /metrics, instrumented
}

func newEnv(t *testing.T) *env {
	t.Helper()
	p := fixture.New(t, fixture.Options{})
	m := metrics.New(metrics.Options{Clock: p.Clock})
	def := pki.DefaultProfile()
	svc, err := enroll.New(p.Store, p.Authority, p.Clock, p.Log, enroll.Config{StaticChallenge: fixture.Challenge,
		Profiles: map[string]pki.Profile{def.Name: def}, DefaultProfile: def.Name, Observer: m})
	if err != nil {
		t.Fatal(err)
	}
	held := pki.DefaultProfile()
	held.Name, held.RequireApproval = "held", true
	heldSvc, err := enroll.New(p.Store, p.Authority, p.Clock, p.Log, enroll.Config{StaticChallenge: fixture.Challenge,
		Profiles: map[string]pki.Profile{held.Name: held}, DefaultProfile: held.Name, Observer: m})
	if err != nil {
		t.Fatal(err)
	}
	mux, err := server.PlainMux(server.Handlers{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	return &env{pki: p, m: m, svc: svc, held: heldSvc, handler: m.Instrument("http", mux)}
}

// issue enrolls cn at the default profile over SCEP.
func (e *env) issue(t *testing.T, cn string) *x509.Certificate {
	t.Helper()
	req := e.pki.Request(t, cn)
	req.Protocol = pki.ProtocolSCEP
	res, err := e.svc.Enroll(context.Background(), req.Request)
	if err != nil {
		t.Fatalf("enroll %s: %v", cn, err)
	}
	return res.Certificate
}

// scrape GETs /metrics through the mux and parses the text format.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET /metrics: Content-Type %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("the scrape does not parse: %v", err)
	}
	return fams
}

// value is the value of the sample of family name with exactly these
// labels (a counter, a gauge, or a histogram's count); ok false when there
// is none.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if !sameLabels(m.GetLabel(), labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func sameLabels(got []*dto.LabelPair, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, l := range got {
		if v, ok := want[l.GetName()]; !ok || v != l.GetValue() {
			return false
		}
	}
	return true
}

// labelValues lists the values label takes in family name.
func labelValues(fams map[string]*dto.MetricFamily, name, label string) []string {
	seen := map[string]bool{}
	for _, m := range fams[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				seen[l.GetValue()] = true
			}
		}
	}
	var out []string
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// expect fails unless the sample has the value.
func expect(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string, want float64) {
	t.Helper()
	got, ok := value(fams, name, labels)
	if !ok {
		t.Errorf("%s%v: no such sample; the family has %v", name, labels, fams[name].GetMetric())
		return
	}
	if got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}
