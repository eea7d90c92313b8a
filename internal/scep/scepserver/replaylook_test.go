package scepserver_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/scepter/scepter/internal/store"
)

// recordMidLook is a store whose first RecordIssuance waits until a
// replayed copy reads the claim on its transaction for the at-th time:
// the first copy's record, which ends its claim, lands just before that
// read.
type recordMidLook struct {
	store.Store
	at        int32
	recording chan struct{} // the first copy is about to record
	recordGo  chan struct{} // closed: it records
	recorded  chan struct{} // closed: it recorded
	release   sync.Once
	reads     atomic.Int32
}

func (s *recordMidLook) RecordIssuance(ctx context.Context, in store.Issuance) error {
	s.recording <- struct{}{}
	<-s.recordGo
	defer close(s.recorded)
	return s.Store.RecordIssuance(ctx, in)
}

func (s *recordMidLook) TransactionClaimOf(ctx context.Context, keyHash []byte, profile, transactionID string) (*store.TransactionClaim, error) {
	if s.reads.Add(1) == s.at {
		s.release.Do(func() { close(s.recordGo) })
		<-s.recorded
	}
	return s.Store.TransactionClaimOf(ctx, keyHash, profile, transactionID)
}

// A copy of a request decides by two reads, of the certificates and of the
// claim on its transaction, and the first copy's record, which ends its
// claim in the same transaction, may land between them: before the
// copy's first read of the claim (checkReplay's), or before its second
// (answerReplay's, after its challenge was checked and no certificate
// found). The copy then answers with that certificate, not with a final
// replay refusal.
func TestCopyMeetsACertificateRecordedAsItLooks(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   int32 // the copy's read of the claim the record lands before
	}{
		{"before it is first asked whether it may be answered", 1},
		{"after it found no certificate", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mid := &recordMidLook{at: tc.at, recording: make(chan struct{}, 1), recordGo: make(chan struct{}), recorded: make(chan struct{})}
			t.Cleanup(func() { mid.release.Do(func() { close(mid.recordGo) }) })
			ts := newTestServer(t, serverOptions{store: func(st store.Store) store.Store { mid.Store = st; return mid }})
			key := testKey(t, 1)
			der, msg := ts.build(t, reqParams{key: key})

			first := make(chan []byte, 1)
			go func() {
				resp, err := http.Post(ts.URL+"/scep?operation=PKIOperation", "application/x-pki-message", bytes.NewReader(der))
				if err != nil {
					first <- nil
					return
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				first <- body
			}()
			<-mid.recording // the first copy holds its claim, and signed

			_, body := ts.post(t, der)
			mid.release.Do(func() { close(mid.recordGo) }) // had the copy not read the claim that often
			if n := mid.reads.Load(); n < tc.at {
				t.Errorf("the copy read the claim %d times, want at least %d", n, tc.at)
			}
			firstBody := <-first
			if firstBody == nil {
				t.Fatal("the first copy got no answer")
			}
			issued, _ := ts.issuedCert(t, ts.parseReply(t, firstBody, msg), msg.SignerCert, key)
			wantSentAgain(t, ts, "the copy", ts.parseReply(t, body, msg), msg.SignerCert, key, issued)
			if n := ts.certCount(t); n != 1 {
				t.Errorf("%d certificates recorded, want 1", n)
			}
		})
	}
}
