package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/client"
)

// The words of the three notes about a kept key after a failure, each
// whole, for every kind of failure: heldKeyNoteFor (a key an earlier run
// kept, taken up: advice only), keptKeyNote (a renewal's new key) and
// enrollKeyNote (an enrollment's key, kept before asking), and whether
// the note removed the key (and its marker). They share their phrases
// for a refused challenge or password and for another authentication
// scheme (keptKeyRemedies); this table holds each note to its words.
// Some rows are of failures a command never passes that note (a
// renewal's noPasswordRefused, an enrollment's renewedCertRefused): they
// pin what the fallback says. DIR is the key's directory.
func TestKeptKeyNoteTexts(t *testing.T) {
	for _, tt := range []struct {
		note    string // held, kept or enroll
		failure heldFailure
		flags   string // enroll: refused, taken up, answered, a reply error, no answer
		removed bool
		want    string // after "enroll failed"
	}{
		{"held", refusedOtherwise, "", false, " (the request used the key in DIR/key.pem, kept for this request by an earlier run that got no certificate: if the server rejected that request, remove it and DIR/key.pem.request to make a new key and a new request; otherwise keep it, the only key its certificate is given for)"},
		{"held", refusedForGood, "", false, " (the request used the key in DIR/key.pem, kept for this request by an earlier run that got no certificate, which the server refused for good: remove it and DIR/key.pem.request to make a new key and a new request)"},
		{"held", challengeRefused, "", false, " (the challenge was refused, not the key: DIR/key.pem is still the key of this request, kept by an earlier run that got no certificate, the only key a certificate issued for it is given for; keep it, and run the same command again with the right --challenge)"},
		{"held", credentialsRefused, "", false, " (the credentials were refused, not the key: DIR/key.pem is still the key of this request, kept by an earlier run that got no certificate, the only key a certificate issued for it is given for; keep it, and run the same command again with the right --user and password (--password-file or SCEPTER_EST_PASSWORD) or client certificate)"},
		{"held", notAnswered, "", false, " (DIR/key.pem is still the key of this request, kept by an earlier run that got no certificate, the only key a certificate issued for it is given for; keep it, and run the same command again later, which takes it up)"},
		{"held", renewedCertRefused, "", false, " (the request used the key in DIR/key.pem, kept for this request by an earlier run that got no certificate: if the server rejected that request, remove it and DIR/key.pem.request to make a new key and a new request; otherwise keep it, the only key its certificate is given for)"},
		{"held", expiredUndecided, "", false, " (the request held for approval earlier, whose key is in DIR/key.pem, expired before anyone decided it, and its transaction with it: remove it and DIR/key.pem.request to make a new key and a new request, with a new one-time challenge if it used one)"},
		{"held", otherAuthScheme, "", false, " (DIR/key.pem is still the key of this request, kept by an earlier run that got no certificate, the only key a certificate issued for it is given for; keep it, and once the server takes HTTP Basic or a client certificate, run the same command again, which takes it up)"},
		{"held", noPasswordRefused, "", false, " (this run sent no password, so none was refused: DIR/key.pem is still the key of this request, kept by an earlier run that got no certificate, the only key a certificate issued for it is given for; keep it, and run the same command again with --user and a password (--password-file or SCEPTER_EST_PASSWORD), or with a client certificate the server takes)"},
		{"kept", refusedOtherwise, "", true, "; a refusal is final, so the new key kept for it in DIR/key.pem is removed: the next run makes a new one"},
		{"kept", refusedForGood, "", true, "; a refusal is final, so the new key kept for it in DIR/key.pem is removed: the next run makes a new one"},
		{"kept", challengeRefused, "", false, "; the challenge was refused, not the key: the new key stays in DIR/key.pem (a re-key approved or issued for it is given only for it); run the same command again with the right --challenge, which asks with it"},
		{"kept", credentialsRefused, "", false, "; the credentials were refused, not the key: the new key stays in DIR/key.pem (a re-key approved or issued for it is given only for it); run the same command again with the right --user and password (--password-file or SCEPTER_EST_PASSWORD) or client certificate, which asks with it"},
		{"kept", notAnswered, "", false, "; the new key is kept in DIR/key.pem: run the same command again to ask with it (the server answers a renewal it has issued already with the same certificate)"},
		{"kept", renewedCertRefused, "", true, "; the certificate being renewed was refused, not a password, and no run renews it: the new key kept for its renewal in DIR/key.pem is removed (the next run makes a new one)"},
		{"kept", expiredUndecided, "", true, "; a refusal is final, so the new key kept for it in DIR/key.pem is removed: the next run makes a new one"},
		{"kept", otherAuthScheme, "", false, "; the new key stays in DIR/key.pem (a re-key approved or issued for it is given only for it); once the server takes HTTP Basic or a client certificate, run the same command again, which asks with it"},
		{"kept", noPasswordRefused, "", false, "; the new key is kept in DIR/key.pem: run the same command again to ask with it (the server answers a renewal it has issued already with the same certificate)"},
		{"enroll", refusedOtherwise, "refused", true, "; a refusal is final, so the key kept for this request in DIR/key.pem is removed: the next run makes a new one"},
		{"enroll", refusedForGood, "refused", true, "; a refusal is final, so the key kept for this request in DIR/key.pem is removed: the next run makes a new one"},
		{"enroll", challengeRefused, "refused", false, "; the challenge was refused, not the key: the key stays in DIR/key.pem; run the same command again with the right --challenge, which asks with it"},
		{"enroll", credentialsRefused, "refused", false, "; the credentials were refused, not the key: the key stays in DIR/key.pem; run the same command again with the right --user and password (--password-file or SCEPTER_EST_PASSWORD) or client certificate, which asks with it"},
		{"enroll", notAnswered, "refused", false, "; the key is kept in DIR/key.pem: run the same command again later, which asks with it"},
		{"enroll", renewedCertRefused, "refused", false, "; the key is kept in DIR/key.pem: run the same command again later, which asks with it"},
		{"enroll", expiredUndecided, "refused", true, "; a refusal is final, so the key kept for this request in DIR/key.pem is removed: the next run makes a new one"},
		{"enroll", otherAuthScheme, "refused", false, "; the key stays in DIR/key.pem: once the server takes HTTP Basic or a client certificate, run the same command again, which asks with it"},
		{"enroll", noPasswordRefused, "refused", true, "; this run sent no password, and a 401 to it is final: the key kept for this request in DIR/key.pem is removed (the next run makes a new one); give --user and a password (--password-file or SCEPTER_EST_PASSWORD), or a client certificate the server takes (--cert, --key)"},
		{"enroll", refusedOtherwise, "refused, taken up", false, " (the request used the key in DIR/key.pem, kept for this request by an earlier run that got no certificate: if the server rejected that request, remove it and DIR/key.pem.request to make a new key and a new request; otherwise keep it, the only key its certificate is given for)"},
		{"enroll", refusedForGood, "refused, taken up", false, " (the request used the key in DIR/key.pem, kept for this request by an earlier run that got no certificate, which the server refused for good: remove it and DIR/key.pem.request to make a new key and a new request)"},
		{"enroll", challengeRefused, "refused, taken up", false, " (the challenge was refused, not the key: DIR/key.pem is still the key of this request, kept by an earlier run that got no certificate, the only key a certificate issued for it is given for; keep it, and run the same command again with the right --challenge)"},
		{"enroll", credentialsRefused, "refused, taken up", false, " (the credentials were refused, not the key: DIR/key.pem is still the key of this request, kept by an earlier run that got no certificate, the only key a certificate issued for it is given for; keep it, and run the same command again with the right --user and password (--password-file or SCEPTER_EST_PASSWORD) or client certificate)"},
		{"enroll", notAnswered, "refused, taken up", false, " (DIR/key.pem is still the key of this request, kept by an earlier run that got no certificate, the only key a certificate issued for it is given for; keep it, and run the same command again later, which takes it up)"},
		{"enroll", renewedCertRefused, "refused, taken up", false, " (the request used the key in DIR/key.pem, kept for this request by an earlier run that got no certificate: if the server rejected that request, remove it and DIR/key.pem.request to make a new key and a new request; otherwise keep it, the only key its certificate is given for)"},
		{"enroll", expiredUndecided, "refused, taken up", false, " (the request held for approval earlier, whose key is in DIR/key.pem, expired before anyone decided it, and its transaction with it: remove it and DIR/key.pem.request to make a new key and a new request, with a new one-time challenge if it used one)"},
		{"enroll", otherAuthScheme, "refused, taken up", false, " (DIR/key.pem is still the key of this request, kept by an earlier run that got no certificate, the only key a certificate issued for it is given for; keep it, and once the server takes HTTP Basic or a client certificate, run the same command again, which takes it up)"},
		{"enroll", noPasswordRefused, "refused, taken up", false, " (this run sent no password, so none was refused: DIR/key.pem is still the key of this request, kept by an earlier run that got no certificate, the only key a certificate issued for it is given for; keep it, and run the same command again with --user and a password (--password-file or SCEPTER_EST_PASSWORD), or with a client certificate the server takes)"},
		{"enroll", refusedForGood, "answered", false, "; the key made for this request stays in DIR/key.pem: run the same command again, which asks with it"},
		{"enroll", refusedForGood, "a reply error", false, "; the key made for this request stays in DIR/key.pem: run the same command again, which asks with it"},
		{"enroll", refusedForGood, "no answer", false, "; no answer came, so the certificate may have been issued: its key is kept in DIR/key.pem (with DIR/key.pem.request); keep it, and run the same command again, which asks again with that key"},
		{"enroll", refusedForGood, "no answer, taken up", false, "; no answer came, so the certificate may have been issued: its key is kept in DIR/key.pem (with DIR/key.pem.request); keep it, and run the same command again, which asks again with that key"},
	} {
		t.Run(fmt.Sprintf("%s %d %s", tt.note, tt.failure, tt.flags), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "key.pem")
			for _, f := range []string{path, path + heldMarkerSuffix} {
				if err := os.WriteFile(f, []byte("kept"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			key := &heldKey{path: path, hold: holdNever}
			failed := errors.New("enroll failed")
			var got error
			switch tt.note {
			case "held":
				got = heldKeyNoteFor(failed, key, tt.failure)
			case "kept":
				got = keptKeyNote(failed, key, tt.failure)
			case "enroll":
				if tt.flags == "a reply error" {
					failed = fmt.Errorf("enroll failed%w", &client.ReplyError{Err: errors.New("")})
				}
				got = enrollKeyNote(failed, key, strings.HasSuffix(tt.flags, "taken up"), tt.flags == "answered", strings.HasPrefix(tt.flags, "refused"), tt.failure)
			}
			if !errors.Is(got, failed) {
				t.Errorf("%v does not wrap the failure", got)
			}
			if msg := strings.ReplaceAll(got.Error(), dir, "DIR"); msg != "enroll failed"+tt.want {
				t.Errorf("the note says\n%s\nwant\nenroll failed%s", msg, tt.want)
			}
			for _, f := range []string{path, path + heldMarkerSuffix} {
				if _, err := os.Stat(f); os.IsNotExist(err) != tt.removed {
					t.Errorf("%s removed: %v, want %v", filepath.Base(f), os.IsNotExist(err), tt.removed)
				}
			}
		})
	}
	// Nothing failed, no key, or a request held (pendingHint said where
	// its key is): the error as it is.
	held := &heldKey{path: "/nonexistent/key.pem"}
	pending := &client.PendingError{}
	for _, tt := range []struct {
		name string
		err  error
		key  *heldKey
	}{{"no failure", nil, held}, {"no key", errors.New("x"), nil}, {"pending", pending, held}} {
		if got := heldKeyNoteFor(tt.err, tt.key, refusedForGood); got != tt.err {
			t.Errorf("heldKeyNoteFor, %s: %v", tt.name, got)
		}
		if got := keptKeyNote(tt.err, tt.key, refusedForGood); got != tt.err {
			t.Errorf("keptKeyNote, %s: %v", tt.name, got)
		}
		if got := enrollKeyNote(tt.err, tt.key, false, false, true, refusedForGood); got != tt.err {
			t.Errorf("enrollKeyNote, %s: %v", tt.name, got)
		}
	}
}
