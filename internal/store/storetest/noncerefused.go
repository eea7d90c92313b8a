package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/store"
)

// A pair whose run ended refused (MarkNonceRefused) says so to its
// replays, so that they are refused at once rather than told to wait for
// a run that is over; a pair not marked, another pair, and a pair
// remembered again (forgotten, or taken over once expired) do not.
func testNonceRefused(t *testing.T, s store.Store) {
	ctx := context.Background()
	n1, n2 := []byte("nonce-0000000001"), []byte("nonce-0000000002")
	exp := t0.Add(time.Hour)
	const (
		remember = "remember"
		mark     = "mark"
		forget   = "forget"
	)
	// want, for remember: "new" (remembered), "seen" (a replay, not
	// refused) or "refused" (a replay of a refused run).
	steps := []struct {
		name   string
		op     string
		tx     string
		nonce  []byte
		now    time.Time
		expiry time.Time
		want   string
	}{
		{"first message", remember, "tx1", n1, t0, exp, "new"},
		{"a copy while it runs", remember, "tx1", n1, t0, exp, "seen"},
		{"its run ends refused", mark, "tx1", n1, t0, exp, ""},
		{"a copy after the refusal", remember, "tx1", n1, t0.Add(time.Second), exp.Add(time.Second), "refused"},
		{"marked again", mark, "tx1", n1, t0, exp, ""},
		{"still refused", remember, "tx1", n1, t0, exp, "refused"},
		{"another nonce of the transaction", remember, "tx1", n2, t0, exp, "new"},
		{"its copy is not refused", remember, "tx1", n2, t0, exp, "seen"},
		{"the nonce in another transaction", remember, "tx2", n1, t0, exp, "new"},
		{"its copy is not refused", remember, "tx2", n1, t0, exp, "seen"},
		{"a pair never remembered is marked", mark, "tx3", n1, t0, exp, ""},
		{"that pair remembered after", remember, "tx3", n1, t0, exp, "new"},
		{"its copy is not refused", remember, "tx3", n1, t0, exp, "seen"},
		{"the refused pair, taken over once expired", remember, "tx1", n1, exp, exp.Add(time.Hour), "new"},
		{"a copy of the new run is not refused", remember, "tx1", n1, exp, exp.Add(time.Hour), "seen"},
		{"the new run ends refused", mark, "tx1", n1, exp, exp, ""},
		{"refused again", remember, "tx1", n1, exp, exp.Add(time.Hour), "refused"},
		{"the refused pair forgotten", forget, "tx1", n1, exp, exp, ""},
		{"remembered again", remember, "tx1", n1, exp, exp.Add(time.Hour), "new"},
		{"a copy of that run is not refused", remember, "tx1", n1, exp, exp.Add(time.Hour), "seen"},
	}
	for i, st := range steps {
		var err error
		switch st.op {
		case mark:
			wantErr(t, st.name, s.MarkNonceRefused(ctx, st.tx, st.nonce), nil)
			continue
		case forget:
			wantErr(t, st.name, s.ForgetNonce(ctx, st.tx, st.nonce), nil)
			continue
		}
		err = s.RememberNonce(ctx, st.tx, st.nonce, st.now, st.expiry)
		var seen *store.NonceSeen
		switch got := errors.As(err, &seen); {
		case st.want == "new" && err != nil:
			t.Errorf("step %d, %s: %v, want the pair remembered", i+1, st.name, err)
		case st.want == "new":
		case !got:
			t.Errorf("step %d, %s: %v, want a NonceSeen", i+1, st.name, err)
		case seen.Refused != (st.want == "refused"):
			t.Errorf("step %d, %s: NonceSeen.Refused %v, want %v", i+1, st.name, seen.Refused, st.want == "refused")
		}
	}
}
