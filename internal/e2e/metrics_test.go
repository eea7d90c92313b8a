package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The metrics and health endpoints of the real binary: after SCEP
// enrollments with `scepter enroll` (three good, one with a wrong
// challenge) /metrics counts them, its latency histogram has the SCEP
// route, and /healthz, /readyz and /metrics answer on both listeners.
func TestMetricsAndHealth(t *testing.T) {
	t.Parallel()
	s := startEST(t, estOpts{prepared: true, challenge: "metrics-e2e-challenge-0123"})
	for i := range 3 {
		if r := enroll(t, t.TempDir(), s.URL, s.Challenge, fmt.Sprintf("CN=metrics-device-%d,O=Acme", i), "--key-type", "p256"); r.err != nil {
			t.Fatalf("enroll %d:\n%s", i, r)
		}
	}
	expectFailed(t, enroll(t, t.TempDir(), s.URL, "not-the-challenge", "CN=metrics-intruder,O=Acme", "--key-type", "p256"),
		"an enrollment with a wrong challenge")

	plain := &http.Client{Timeout: 10 * time.Second}
	secure := httpsClient(t, s)
	listeners := map[string]struct {
		base   string
		client *http.Client
	}{"http": {s.Base, plain}, "https": {s.HTTPS, secure}}

	for name, l := range listeners {
		for _, path := range []string{"/healthz", "/readyz"} {
			code, body := metricsGet(t, l.client, l.base+path)
			if code != http.StatusOK {
				t.Errorf("%s %s: %d, want 200\n%s", name, path, code, body)
			}
		}
	}

	for name, l := range listeners {
		code, body := metricsGet(t, l.client, l.base+"/metrics")
		if code != http.StatusOK {
			t.Fatalf("%s /metrics: %d\n%s", name, code, body)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("%s /metrics does not parse: %v\n%s", name, err, body)
		}
		// Every listener serves the one registry.
		enrollments := map[string]string{"protocol": "scep", "profile": "default"}
		if got := metricSample(fams, "scepter_enrollments_total", with(enrollments, "result", "issued")); got != 3 {
			t.Errorf("%s: scepter_enrollments_total{result=issued} = %v, want 3\n%s", name, got, family(fams, "scepter_enrollments_total"))
		}
		if got := metricSample(fams, "scepter_enrollments_total", with(enrollments, "result", "refused")); got != 1 {
			t.Errorf("%s: scepter_enrollments_total{result=refused} = %v, want 1\n%s", name, got, family(fams, "scepter_enrollments_total"))
		}
		if got := metricSample(fams, "scepter_enrollment_refusals_total", with(enrollments, "code", "unauthorized")); got != 1 {
			t.Errorf("%s: scepter_enrollment_refusals_total{code=unauthorized} = %v, want 1\n%s", name, got, family(fams, "scepter_enrollment_refusals_total"))
		}
		// The three certificates (the server's own are left out).
		if got := metricSample(fams, "scepter_certificates", map[string]string{"status": "valid"}); got < 3 {
			t.Errorf("%s: scepter_certificates{status=valid} = %v, want at least 3", name, got)
		}
		var scepRequests float64
		for _, m := range fams["scepter_http_request_duration_seconds"].GetMetric() {
			labels := labelMap(m)
			if labels["route"] == "/scep" && labels["listener"] == "http" {
				scepRequests += float64(m.GetHistogram().GetSampleCount())
			}
			for _, v := range labels {
				if strings.Contains(v, "metrics-device") || strings.Contains(v, "operation=") {
					t.Errorf("%s: a latency label holds request data: %v", name, labels)
				}
			}
		}
		// GetCACaps, GetCACert and PKIOperation for each of the four.
		if scepRequests < 4 {
			t.Errorf("%s: %v requests on route /scep of the plain listener, want at least 4\n%s", name, scepRequests,
				family(fams, "scepter_http_request_duration_seconds"))
		}
		for _, f := range []string{"go_goroutines", "process_resident_memory_bytes", "scepter_store_errors_total"} {
			if fams[f] == nil {
				t.Errorf("%s: /metrics has no %s", name, f)
			}
		}
	}
}

// httpsClient trusts the server's root for its HTTPS listener.
func httpsClient(t *testing.T, s *estServer) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(readCert(t, s.CAFile("root.crt")))
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true}}
}

func metricsGet(t *testing.T, c *http.Client, url string) (int, []byte) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, b
}

// metricSample is the value of the counter or gauge of family name with
// exactly these labels (-1 when there is none).
func metricSample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	for _, m := range fams[name].GetMetric() {
		got := labelMap(m)
		if len(got) != len(labels) {
			continue
		}
		same := true
		for k, v := range labels {
			same = same && got[k] == v
		}
		if !same {
			continue
		}
		if m.Counter != nil {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	}
	return -1
}

func labelMap(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// with is labels plus one more.
func with(labels map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for a, b := range labels {
		out[a] = b
	}
	return out
}

// family prints a metric family for a failure message.
func family(fams map[string]*dto.MetricFamily, name string) string {
	var b strings.Builder
	for _, m := range fams[name].GetMetric() {
		fmt.Fprintf(&b, "  %v\n", labelMap(m))
	}
	return b.String()
}
