package crl

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/store"
)

// A full disk fails each write with another text (it names the temporary
// file the write made): a CRL held back is logged at ERROR once per CRL,
// not once per try, and Run's per-update warning leaves it out.
func TestHoldBackLogsOncePerCRL(t *testing.T) {
	var logs bytes.Buffer
	p := New(nil, nil, nil, slog.New(slog.NewTextHandler(&logs, nil)), Config{})
	id := strings.Repeat("ab", 32)
	p.set(&store.CRL{IssuerID: id, Number: 11})
	other := errors.New("crl: the store is down")
	for try, number := range []int64{12, 12, 12, 13, 13} {
		err := p.holdBack(&store.CRL{IssuerID: id, Number: number},
			fmt.Errorf("crl: recording CRL number %d: write .%s.tmp-%d: no space left on device", number, id, try))
		if left := withoutLogged(errors.Join(err, other)); !errors.Is(left, other) || strings.Contains(left.Error(), "no space") {
			t.Errorf("try %d: Run would warn of %v, want only the other error", try, left)
		}
	}
	if n := strings.Count(logs.String(), "level=ERROR"); n != 2 {
		t.Errorf("%d ERROR lines for two CRLs held back, want 2:\n%s", n, logs.String())
	}
}
