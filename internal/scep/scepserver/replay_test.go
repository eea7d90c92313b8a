package scepserver_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/scep/scepserver"
)

// A message answered 503 (here: the issuer not ready) changed nothing, and
// the device sends the same bytes again: the retry runs and is answered,
// after one 503 or several. A copy of the message whose retry was answered
// is still a replay, and one certificate is issued in all.
func TestRetryAfterUnavailableIsNoReplay(t *testing.T) {
	for _, unavailable := range []int{1, 2, 5} {
		var mu sync.Mutex
		failures := unavailable
		ts := newTestServer(t, serverOptions{enroll: enroll.Config{IssuerReady: func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			if failures > 0 {
				failures--
				return errors.New("this node lacks the current CA's keys")
			}
			return nil
		}}})
		key := testKey(t, 1)
		der, msg := ts.build(t, reqParams{key: key})
		for i := range unavailable {
			if resp, body := ts.postTo(t, "/scep", der); resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("%d unavailable, send %d: HTTP %d %s, want 503", unavailable, i+1, resp.StatusCode, body)
			}
		}
		resp, body := ts.postTo(t, "/scep", der)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%d unavailable, the retry: HTTP %d %s", unavailable, resp.StatusCode, body)
		}
		if rep := ts.parseReply(t, body, msg); rep.PKIStatus != scep.StatusSuccess {
			t.Fatalf("%d unavailable, the retry: pkiStatus %s failInfo %s (%s), want SUCCESS", unavailable, rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
		}
		_, body = ts.postTo(t, "/scep", der)
		rep := ts.parseReply(t, body, msg)
		wantFailure(t, rep, scep.BadRequest)
		if !strings.Contains(rep.FailInfoText, "replayed") {
			t.Errorf("%d unavailable, a copy of the answered retry: %q, want a replay", unavailable, rep.FailInfoText)
		}
		if n := ts.certCount(t); n != 1 {
			t.Errorf("%d unavailable: %d certificates recorded, want 1", unavailable, n)
		}
	}
}

// Copies of a message answered 503, sent again at once, run one at a time:
// one of them is answered, the others are replays, and one certificate is
// issued.
func TestCopiesOfARetryAfterUnavailableRunOnce(t *testing.T) {
	var mu sync.Mutex
	failed := false
	ts := newTestServer(t, serverOptions{enroll: enroll.Config{IssuerReady: func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if !failed {
			failed = true
			return errors.New("this node lacks the current CA's keys")
		}
		return nil
	}}})
	der, msg := ts.build(t, reqParams{key: testKey(t, 1)})
	if resp, body := ts.postTo(t, "/scep", der); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("HTTP %d %s, want 503", resp.StatusCode, body)
	}
	const copies = 4
	bodies := make([][]byte, copies)
	var wg sync.WaitGroup
	for i := range copies {
		wg.Go(func() {
			resp, err := http.Post(ts.URL+"/scep?operation=PKIOperation", "application/x-pki-message", bytes.NewReader(der))
			if err == nil {
				defer resp.Body.Close()
				bodies[i], _ = io.ReadAll(resp.Body)
			}
		})
	}
	wg.Wait()
	var statuses []scep.PKIStatus
	succeeded := 0
	for _, body := range bodies {
		s := ts.parseReply(t, body, msg).PKIStatus
		statuses = append(statuses, s)
		if s == scep.StatusSuccess {
			succeeded++
		}
	}
	if succeeded != 1 || ts.certCount(t) != 1 {
		t.Errorf("copies answered %v: %d SUCCESS, %d certificates, want 1 and 1", statuses, succeeded, ts.certCount(t))
	}
}

// forgetFails is a service whose store cannot forget a nonce the first
// `fails` times it is asked.
type forgetFails struct {
	scepserver.Service
	mu    sync.Mutex
	fails int
}

func (s *forgetFails) ForgetNonce(ctx context.Context, txID string, nonce []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fails > 0 {
		s.fails--
		return errors.New("store unreachable")
	}
	return s.Service.ForgetNonce(ctx, txID, nonce)
}

// A message answered 503 whose nonce the store could not forget then (it
// was down) is not refused as a replay when sent again: the node forgets
// it first and runs it, or answers 503 again while the store still cannot.
func TestRetryAfterUnavailableWhenTheStoreCouldNotForget(t *testing.T) {
	var mu sync.Mutex
	notReady := true
	ts := newTestServer(t, serverOptions{
		enroll: enroll.Config{IssuerReady: func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			if notReady {
				notReady = false
				return errors.New("this node lacks the current CA's keys")
			}
			return nil
		}},
		service: func(s scepserver.Service) scepserver.Service { return &forgetFails{Service: s, fails: 2} },
	})
	der, msg := ts.build(t, reqParams{key: testKey(t, 1)})
	for i, want := range []int{http.StatusServiceUnavailable, http.StatusServiceUnavailable} {
		if resp, body := ts.postTo(t, "/scep", der); resp.StatusCode != want {
			t.Fatalf("send %d: HTTP %d %s, want %d", i+1, resp.StatusCode, body, want)
		}
	}
	resp, body := ts.postTo(t, "/scep", der)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the retry once the store forgets: HTTP %d %s", resp.StatusCode, body)
	}
	if rep := ts.parseReply(t, body, msg); rep.PKIStatus != scep.StatusSuccess {
		t.Fatalf("the retry: pkiStatus %s failInfo %s (%s), want SUCCESS", rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
	}
	_, body = ts.postTo(t, "/scep", der)
	if rep := ts.parseReply(t, body, msg); rep.PKIStatus != scep.StatusFailure || !strings.Contains(rep.FailInfoText, "replayed") {
		t.Errorf("a copy of the answered retry: %s %q, want a replay", rep.PKIStatus, rep.FailInfoText)
	}
	if n := ts.certCount(t); n != 1 {
		t.Errorf("%d certificates recorded, want 1", n)
	}
}
