package scepserver_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/scepter/scepter/internal/pkitest"
)

func captureSeeds(f *testing.F) [][]byte {
	seeds := pkitest.SCEPCaptureMessages(captureDir)
	if len(seeds) == 0 {
		f.Fatal("no seeds")
	}
	return seeds
}

// FuzzPKIOperation drives the whole handler (parse, verify, decrypt,
// enroll): whatever the bytes, the answer is a 200 CertRep or a 4xx, never
// a 5xx or a panic.
func FuzzPKIOperation(f *testing.F) {
	for _, s := range captureSeeds(f) {
		f.Add(s)
	}
	ts := newTestServer(f, serverOptions{})
	valid, _ := ts.build(f, reqParams{})
	f.Add(valid)
	f.Fuzz(func(t *testing.T, data []byte) {
		resp, err := http.Post(ts.URL+"/scep?operation=PKIOperation", "", bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("HTTP %d for %d bytes", resp.StatusCode, len(data))
		}
	})
}
