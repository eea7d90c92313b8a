package ops_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/pki"
)

// TestPageAfterDeletedChallenges: an operator deleting challenges page by
// page (each page's last one gone before the next page is asked for) sees
// every challenge once; the next page follows where the last one ended.
func TestPageAfterDeletedChallenges(t *testing.T) {
	ctx := context.Background()
	p, o := newOps(t)
	op := auth.CLI("cli:test")
	var want []string // newest first
	for range 7 {
		_, ch, err := o.NewChallenge(ctx, op, admin.ChallengeSpec{TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		want = append([]string{ch.ID}, want...)
		p.Clock.Advance(time.Second)
	}
	var got []string
	for cursor, pages := "", 0; ; pages++ {
		list, next, err := o.Challenges(ctx, op, 3, cursor)
		if err != nil {
			t.Fatalf("page %d, after deleting the one before: %v", pages+1, err)
		}
		for _, ch := range list {
			got = append(got, ch.ID)
			if err := o.DeleteChallenge(ctx, op, ch.ID); err != nil {
				t.Fatalf("delete %s: %v", ch.ID, err)
			}
		}
		if next == "" || pages > len(want) {
			break
		}
		cursor = next
	}
	if !slices.Equal(got, want) {
		t.Errorf("challenges deleted page by page: %v, want %v", got, want)
	}
}

// TestPageAfterPurgedRequest: the page after one whose last request was
// purged (expired) starts with the next older request.
func TestPageAfterPurgedRequest(t *testing.T) {
	ctx := context.Background()
	p, o := newOps(t)
	now := p.Clock.Now()
	for i := range 5 {
		r := pki.EnrollmentRequest{ID: fmt.Sprintf("req-%d", i), TransactionID: fmt.Sprintf("tx-%d", i), Profile: "default",
			Protocol: pki.ProtocolSCEP, Subject: "CN=device", CSR: []byte{0x30}, CreatedAt: now, ExpiresAt: now.Add(48 * time.Hour)}
		if i == 2 {
			r.ExpiresAt = now.Add(time.Hour)
		}
		if err := p.Store.CreateRequest(ctx, r, nil, pki.AuditEvent{Time: now, Type: pki.EventRequestPending}); err != nil {
			t.Fatal(err)
		}
	}
	op := auth.CLI("cli:test")
	first, next, err := o.Requests(ctx, op, "", "", 3, "")
	if err != nil || len(first) != 3 || first[2].ID != "req-2" || next == "" {
		t.Fatalf("first page: %v, next %q, %v; want req-4 to req-2 and a next page", first, next, err)
	}
	if err := p.Store.PurgeExpired(ctx, now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	second, end, err := o.Requests(ctx, op, "", "", 3, next)
	if err != nil {
		t.Fatalf("the page after a purged req-2: %v", err)
	}
	var got []string
	for _, r := range second {
		got = append(got, r.ID)
	}
	if want := []string{"req-1", "req-0"}; !slices.Equal(got, want) || end != "" {
		t.Errorf("the page after a purged req-2: %v, next %q; want %v and no next page", got, end, want)
	}
}

// TestForeignCursors: a cursor of another list or filter, a malformed one,
// and one of the form held requests and challenges were paged with before
// (the tag, then the last item's ID) are refused, saying to start again.
func TestForeignCursors(t *testing.T) {
	ctx := context.Background()
	_, o := newOps(t)
	op := auth.CLI("cli:test")
	for range 3 {
		if _, _, err := o.NewChallenge(ctx, op, admin.ChallengeSpec{TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	list, chCursor, err := o.Challenges(ctx, op, 1, "")
	if err != nil || chCursor == "" {
		t.Fatalf("first page: next %q, %v", chCursor, err)
	}
	tag, _, _ := strings.Cut(chCursor, ".")
	oldForm := tag + "." + base64.RawURLEncoding.EncodeToString([]byte(list[0].ID))
	for _, tc := range []struct {
		name, cursor string
		requests     bool // given to the pending requests' list, not challenges
	}{
		{"a challenges cursor of the ID form", oldForm, false},
		{"a challenges cursor for requests", chCursor, true},
		{"no tag", strings.TrimPrefix(chCursor, tag+"."), false},
		{"another tag", "AAAAAAAAAAAA" + strings.TrimPrefix(chCursor, tag), false},
		{"not base64", tag + ".%%%", false},
		{"empty inner", tag + ".", false},
	} {
		if tc.requests {
			_, _, err = o.Requests(ctx, op, "", "", 1, tc.cursor)
		} else {
			_, _, err = o.Challenges(ctx, op, 1, tc.cursor)
		}
		if pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(pki.ErrorMessage(err), "start again from the first page") {
			t.Errorf("%s: %v, want EBadRequest saying to start again", tc.name, err)
		}
	}
}
