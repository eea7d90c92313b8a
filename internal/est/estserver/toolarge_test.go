package estserver_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/pkitest"
)

// A body announced larger than EST takes is refused 413 before it is
// read: a client that sends "Expect: 100-continue" gets the 413, not "100
// Continue" and then a connection reset, and sends none of the body.
func TestTooLargeBodyRefusedBeforeItIsSent(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	c := f.httpClient(nil, 0)
	c.Transport.(*http.Transport).ExpectContinueTimeout = time.Minute
	t.Cleanup(c.CloseIdleConnections)
	for _, size := range []int{2 << 20, est.MaxBodyBytes + 1} {
		body := pkitest.NewCountingReader(strings.Repeat("A", size))
		req, err := http.NewRequest(http.MethodPost, f.url+est.PathPrefix+"simpleenroll", body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = int64(size)
		req.Header.Set("Content-Type", est.ContentTypePKCS10)
		req.Header.Set("Expect", "100-continue")
		req.SetBasicAuth("alice", userPassword)
		r := f.do(c, req)
		wantStatus(t, r, http.StatusRequestEntityTooLarge, "larger")
		if sent := body.Sent(); sent != 0 {
			t.Errorf("%d bytes: %d of them sent before the 413, want none", size, sent)
		}
	}
}
