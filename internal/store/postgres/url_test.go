package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/migrate"
)

// TestOpenRefusesAmbiguousUserinfo: a URL whose password pgx would split
// elsewhere than Redact does (a raw '@' in it, or a '@' after a raw '?'),
// or that has an '@' anywhere but before the host (one in a query value:
// a password with a raw '/' and '?' puts its '@' there), is refused before
// the driver sees it, as a configuration error (not store.ErrUnavailable,
// which no retry mends), showing no part of the password; one both read
// alike is tried as before. Nothing listens on 127.0.0.1:1.
func TestOpenRefusesAmbiguousUserinfo(t *testing.T) {
	const q = "?sslmode=disable&connect_timeout=2"
	runURLCases(t, []urlCase{
		{"raw @ in the password", "postgres://r3:Pa@ss-secret@127.0.0.1:1/r3" + q, []string{"Pa@ss-secret", "ss-secret"}, true, []string{"%40"}},
		{"raw @ early in the password", "postgres://r3:P@ssw0rd-secret@127.0.0.1:1/r3" + q, []string{"ssw0rd-secret"}, true, []string{"%40"}},
		{"raw @ and : in the password", "postgres://r3:Pa@ss:secret-tail@127.0.0.1:1/r3" + q, []string{"ss:secret-tail", "secret-tail"}, true, []string{"%40"}},
		{"raw @ in the user name", "postgres://ops@example.org:pw-secret@127.0.0.1:1/r3" + q, []string{"pw-secret"}, true, []string{"%40"}},
		{"postgresql scheme", "postgresql://r3:Pa@ss-secret@127.0.0.1:1/r3" + q, []string{"ss-secret"}, true, []string{"%40"}},
		{"raw @ in a query password before the path", "postgres://127.0.0.1:1?password=sec@ret-tail&sslmode=disable", []string{"ret-tail", "sec@ret"}, true, []string{"%40"}},
		{"password that looks like a port, then a raw ?", "postgres://r3:5432?secret-pw@127.0.0.1:1/r3" + q, []string{"secret-pw"}, true, []string{"%3F"}},
		{"@ percent-encoded", "postgres://r3:Pa%40ss-secret@127.0.0.1:1/r3" + q, []string{"Pa@ss-secret", "ss-secret"}, false, nil},
		{"raw ? in the password (net/url cannot read it)", "postgres://r3:pa?ss-secret@127.0.0.1:1/r3" + q, []string{"ss-secret"}, false, nil},
		{"@ in a query value after the path", "postgres://r3@127.0.0.1:1/r3?password=sec@ret-tail&sslmode=disable&connect_timeout=2", []string{"ret-tail"}, true, []string{"%40"}},
	}, nil)
}

// TestOpenNamesWhatToFixInURL: a URL with a raw '/' in its password (the
// driver then reads no password, and the part before the '/' as host and
// port) or a port out of range is refused as a configuration error that
// says what to write, showing no part of the password, and not naming the
// store twice ("postgres: open postgres:"); so is one with an '@' in a
// query value (write %40 there). Nothing listens on 127.0.0.1:1.
func TestOpenNamesWhatToFixInURL(t *testing.T) {
	const q = "?sslmode=disable&connect_timeout=2"
	runURLCases(t, []urlCase{
		{"raw / in the password", "postgres://sl:Sl/Pw1-secret@127.0.0.1:1/sc2" + q, []string{"Pw1-secret", "Sl/Pw1"}, true, []string{"%2F", "%40", "%3F", "%23", "%25", "%3A"}},
		{"raw / and ? in the password", "postgres://sl:Sl/Pw?1-secret@127.0.0.1:1/sc2" + q, []string{"1-secret"}, true, []string{"%2F"}},
		{"raw / and a bad % in the password", "postgres://sl:ab/c%zz-secret@127.0.0.1:1/sc2" + q, []string{"zz-secret"}, true, []string{"%2F"}},
		{"raw / after digits in the password", "postgres://sl:12/34-secret@127.0.0.1:1/sc2" + q, []string{"34-secret"}, true, []string{"%2F"}},
		{"port above 65535", "postgres://plain:PlainSecret99@127.0.0.1:99999/sc2" + q, []string{"PlainSecret99"}, true, []string{"1 to 65535"}},
		{"port 0", "postgres://plain:PlainSecret99@127.0.0.1:0/sc2" + q, []string{"PlainSecret99"}, true, []string{"1 to 65535"}},
		{"port not a number", "postgres://plain:PlainSecret99@127.0.0.1:pg/sc2" + q, []string{"PlainSecret99"}, true, []string{"1 to 65535"}},
		{"second host's port", "postgres://plain:PlainSecret99@127.0.0.1:1,127.0.0.2:70000/sc2" + q, []string{"PlainSecret99"}, true, []string{"1 to 65535"}},
		{"no user name, port above 65535", "postgres://127.0.0.1:99999/sc2" + q, nil, true, []string{"1 to 65535", "%2F"}},
		{"@ in a query password, no user name", "postgres://127.0.0.1:1/sc2" + q + "&password=sec@ret/tail-secret", []string{"ret/tail-secret"}, true, []string{"%40"}},
	}, func(t *testing.T, err error) {
		if strings.Contains(err.Error(), "cannot parse") || strings.Contains(err.Error(), "open postgres: ") {
			t.Errorf("error says nothing of what to fix, or names the store twice: %v", err)
		}
	})
}

// urlCase is a store URL Open and OpenExisting are given.
type urlCase struct {
	name    string
	url     string
	secrets []string // no part of the password may show
	refused bool     // as a configuration error (ErrInvalidURL)
	hints   []string // what the refusal must say
}

// runURLCases opens each case's URL with Open and with OpenExisting and
// checks the error: no secret in it, refused or not as the case says, a
// refusal not marked store.ErrUnavailable (no retry mends it) and saying
// its hints; refusedToo checks a refusal further.
func runURLCases(t *testing.T, cases []urlCase, refusedToo func(*testing.T, error)) {
	t.Helper()
	opens := []struct {
		name string
		open func(context.Context, string, ...migrate.Option) (*Store, error)
	}{{"Open", Open}, {"OpenExisting", OpenExisting}}
	for _, tt := range cases {
		for _, o := range opens {
			t.Run(tt.name+"/"+o.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				s, err := o.open(ctx, tt.url)
				if err == nil {
					s.Close()
					t.Fatal("no error")
				}
				for _, secret := range tt.secrets {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error shows %q of the password: %v", secret, err)
					}
				}
				if strings.Contains(err.Error(), "postgres: open postgres: ") {
					t.Errorf("error names the store twice: %v", err)
				}
				if got := errors.Is(err, ErrInvalidURL); got != tt.refused {
					t.Fatalf("errors.Is(ErrInvalidURL) = %v, want %v: %v", got, tt.refused, err)
				}
				if !tt.refused {
					return
				}
				if errors.Is(err, store.ErrUnavailable) {
					t.Errorf("refused URL marked temporarily unavailable: %v", err)
				}
				for _, h := range tt.hints {
					if !strings.Contains(err.Error(), h) {
						t.Errorf("error does not say %q: %v", h, err)
					}
				}
				if refusedToo != nil {
					refusedToo(t, err)
				}
			})
		}
	}
}

// TestOpenMarksUnparsableURLInvalid: a URL pgx cannot parse is a
// configuration error too.
func TestOpenMarksUnparsableURLInvalid(t *testing.T) {
	_, err := Open(context.Background(), "postgres://r3:pw@127.0.0.1:1/r3?pool_max_conns=lots")
	if !errors.Is(err, ErrInvalidURL) || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Open: %v, want ErrInvalidURL and not ErrUnavailable", err)
	}
}

// TestScrubSecrets: the second guard masks the password and each part of
// it between '@' and ':' (of at least minSecretPart bytes) in the driver's
// text, while errors.Is still sees what the error wraps.
func TestScrubSecrets(t *testing.T) {
	tests := []struct {
		name, url, text string
		hidden          []string
		kept            string // a part of the text that must stay readable
	}{
		{"tail of the password as a host", "postgres://r3:Pa@ss-secret@h/db",
			"failed to connect to `user=r3 database=db`: hostname resolving error: lookup ss-secret@h: no such host",
			[]string{"ss-secret"}, "no such host"},
		{"parts split at ':'", "postgres://r3:first-part:second-part@h/db",
			"user=first-part port=second-part", []string{"first-part", "second-part"}, "user="},
		{"percent-decoded password", "postgres://r3:Pa%40ss-secret@h/db",
			"lookup Pa@ss-secret", []string{"Pa@ss-secret", "ss-secret"}, "lookup"},
		{"query password", "postgres://h/db?password=q-secret@tail-part",
			"user=h?password=q-secret host=tail-part", []string{"q-secret", "tail-part"}, "host="},
		{"short parts are left", "postgres://r3:ab@cd-secret@h/db",
			"lookup cd-secret@h: abc", []string{"cd-secret"}, "abc"},
		{"query password net/url cannot decode", "postgres://h/db?user=u&password=top-secret%zz",
			"password top-secret%zz", []string{"top-secret%zz"}, "password"},
		{"rest of a query password after a raw &", "postgres://h/db?password=ab&cd-secret&sslmode=disable",
			"parameter cd-secret", []string{"cd-secret"}, "parameter"},
		{"keyword/value password", "host=h password=kv-secret dbname=db",
			"lookup kv-secret", []string{"kv-secret"}, "lookup"},
		{"quoted keyword/value password", `host=h password='kv secret\'s' dbname=db`,
			"user=kv secret's", []string{"kv secret's", "kv secret"}, "user="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner := fmt.Errorf("%w: %s", store.ErrUnavailable, tt.text)
			err := scrubSecrets(inner, tt.url)
			for _, h := range tt.hidden {
				if strings.Contains(err.Error(), h) {
					t.Errorf("scrubbed text still shows %q: %v", h, err)
				}
			}
			if !strings.Contains(err.Error(), tt.kept) {
				t.Errorf("scrubbed text lost %q: %v", tt.kept, err)
			}
			if !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("scrubbed error no longer wraps store.ErrUnavailable: %v", err)
			}
		})
	}
	plain := errors.New("nothing secret here")
	if got := scrubSecrets(plain, "postgres://r3:pw-secret@h/db"); got != plain {
		t.Errorf("an error without a secret was rewrapped: %v", got)
	}
}

// TestNoPieceOfAPasswordIsPrinted: a password with a raw '@' and later a
// '/' (so that the '@' the user meant comes after the first '/'), with a
// bad percent-encoding, or a query password with a bad one or a raw '&',
// shows no piece of it (no 4 bytes of it in a row) in anything printed:
// Open's and OpenExisting's errors (which carry openLabel's name of the
// store) and Redact (the banner, flag help, the audit trail's
// server.started). Each is refused before connecting (ErrInvalidURL, not
// store.ErrUnavailable) saying what to percent-encode. The first three are
// r82's: the driver sent "ssword" to DNS and printed the rest of the
// password as a database name, or quoted it in a decoding error. Nothing
// listens on 127.0.0.1:1.
func TestNoPieceOfAPasswordIsPrinted(t *testing.T) {
	const encode = "%2F" // each refusal names the characters to encode
	for _, tt := range []struct {
		name, url, password string
		hint                string
	}{
		{"raw @ then raw /", "postgres://scepter:Pa@ssword/Secret99@127.0.0.1:1/scep1", "Pa@ssword/Secret99", encode},
		{"raw @, raw /, bad %", "postgres://scepter:Pa@ss/w%zzSecret@127.0.0.1:1/scep1", "Pa@ss/w%zzSecret", encode},
		{"raw @, /, bad %, # and ?", "postgres://scepter:Pa@ss/w%rd#1?x@127.0.0.1:1/scep1", "Pa@ss/w%rd#1?x", encode},
		{"raw / then raw @", "postgres://scepter:Xq/Kv@Jm9Tw4@127.0.0.1:1/scep1", "Xq/Kv@Jm9Tw4", encode},
		{"raw / and bad %, no raw @", "postgres://scepter:Xq/Kv%zz9Jm4@127.0.0.1:1/scep1", "Xq/Kv%zz9Jm4", encode},
		{"raw /, ? and = in the password", "postgres://scepter:Xq/Kv?a=Jm9Tw4@127.0.0.1:1/scep1", "Xq/Kv?a=Jm9Tw4", encode},
		{"bad % in the userinfo password", "postgres://scepter:Xq%zzKv9Jm4@127.0.0.1:1/scep1", "Xq%zzKv9Jm4", "%25"},
		{"bad % in a query password", "postgres://127.0.0.1:1/scep1?user=scepter&password=topsecret%zz", "topsecret%zz", "%25"},
		{"bad % in a query sslpassword", "postgres://scepter@127.0.0.1:1/scep1?sslpassword=Xq9Kv%zzJm4&sslmode=disable", "Xq9Kv%zzJm4", "%25"},
		{"bad % in a query password's key", "postgres://127.0.0.1:1/scep1?pass%zzword=Xq9KvJm4Tw&sslmode=disable", "Xq9KvJm4Tw", "%25"},
		{"raw & in a query password", "postgres://127.0.0.1:1/scep1?password=Xq9&KvJm4Tw&sslmode=disable", "Xq9&KvJm4Tw", "%25"},
		{"password and a bad % in the database name", "postgres://scepter:Xq9KvJm4@127.0.0.1:1/sc%zzep1", "Xq9KvJm4", "%25"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			printed := map[string]string{"Redact": Redact(tt.url), "openLabel": openLabel(Redact(tt.url))}
			for _, o := range []struct {
				name string
				open func(context.Context, string, ...migrate.Option) (*Store, error)
			}{{"Open", Open}, {"OpenExisting", OpenExisting}} {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				s, err := o.open(ctx, tt.url)
				cancel()
				if err == nil {
					s.Close()
					t.Fatalf("%s: no error", o.name)
				}
				if !errors.Is(err, ErrInvalidURL) || errors.Is(err, store.ErrUnavailable) {
					t.Errorf("%s: %v, want ErrInvalidURL (refused before connecting), not ErrUnavailable", o.name, err)
				}
				if !strings.Contains(err.Error(), tt.hint) {
					t.Errorf("%s: error does not say %q: %v", o.name, tt.hint, err)
				}
				printed[o.name] = err.Error()
			}
			for what, text := range printed {
				if piece := passwordPiece(text, tt.password); piece != "" {
					t.Errorf("%s shows %q of the password %q: %s", what, piece, tt.password, text)
				}
			}
		})
	}
}

// passwordPiece is the first 4 bytes in a row of password that text
// holds, or "". The words of the messages ("password", "percent") are
// taken out of text first: a password may share 4 letters with them.
func passwordPiece(text, password string) string {
	for _, word := range []string{"password", "percent"} {
		text = strings.ReplaceAll(text, word, "")
	}
	for i := 0; i+4 <= len(password); i++ {
		if strings.Contains(text, password[i:i+4]) {
			return password[i : i+4]
		}
	}
	return ""
}

// TestRedactMasksQueryPasswords: Redact masks every password parameter's
// value however it is encoded, keeps the rest of the query as given, and
// masks a part without '=' (the rest of a password after a raw '&').
func TestRedactMasksQueryPasswords(t *testing.T) {
	for _, tt := range []struct{ url, want string }{
		{"postgres://h/db?user=u&password=topsecret%zz", "postgres://h/db?user=u&password=xxxxx"},
		{"postgres://h/db?password=top%20secret&sslmode=disable", "postgres://h/db?password=xxxxx&sslmode=disable"},
		{"postgres://h/db?sslmode=disable&PassWord=a&sslpassword=b", "postgres://h/db?sslmode=disable&PassWord=xxxxx&sslpassword=xxxxx"},
		{"postgres://h/db?pass%77ord=secret1", "postgres://h/db?pass%77ord=xxxxx"},
		{"postgres://h/db?pass%zzword=secret1", "postgres://h/db?pass%zzword=xxxxx"},
		{"postgres://h/db?password=ab&cdsecret&sslmode=disable", "postgres://h/db?password=xxxxx&xxxxx&sslmode=disable"},
		{"postgres://h/db?password=a=b&user=u", "postgres://h/db?password=xxxxx&user=u"},
		{"postgres://u:pw@h/db?application_name=x%20y&sslmode=require", "postgres://u:xxxxx@h/db?application_name=x%20y&sslmode=require"},
		{"postgres://u:pw@h/db", "postgres://u:xxxxx@h/db"},
		{"postgres://u:Pa@ss/word@h/db", "postgres"},
		{"host=h password=secret", "postgres"},
	} {
		if got := Redact(tt.url); got != tt.want {
			t.Errorf("Redact(%s) = %q, want %q", tt.url, got, tt.want)
		}
	}
}
