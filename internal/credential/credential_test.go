package credential

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPasswordRoundTrip(t *testing.T) {
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q", h)
	}
	h2, _ := HashPassword("correct horse")
	if h == h2 {
		t.Error("two hashes of one password are equal: no salt")
	}
	for pw, want := range map[string]bool{"correct horse": true, "correct horsE": false, "": false, strings.Repeat("x", 5000): false} {
		ok, err := VerifyPassword(h, pw)
		if err != nil || ok != want {
			t.Errorf("VerifyPassword(%.10q) = %v, %v; want %v", pw, ok, err, want)
		}
	}
}

// A hash at another cost says its cost and verifies as one at the
// default does; a cost VerifyPassword would refuse is refused here first.
func TestHashPasswordWithCost(t *testing.T) {
	cases := []struct {
		cost   Cost
		prefix string // "" when the cost is refused
	}{
		{DefaultCost(), "$argon2id$v=19$m=19456,t=2,p=1$"},
		{Cost{Time: 1, MemoryKiB: 64}, "$argon2id$v=19$m=64,t=1,p=1$"},
		{Cost{Time: 16, MemoryKiB: 8}, "$argon2id$v=19$m=8,t=16,p=1$"},
		{Cost{Time: 0, MemoryKiB: 64}, ""},
		{Cost{Time: 17, MemoryKiB: 64}, ""},
		{Cost{Time: 1, MemoryKiB: 7}, ""},
		{Cost{Time: 1, MemoryKiB: 1<<20 + 1}, ""},
	}
	for _, c := range cases {
		h, err := HashPasswordWithCost("correct horse", c.cost)
		if c.prefix == "" {
			if err == nil {
				t.Errorf("cost %+v: %q, want refused", c.cost, h)
			}
			continue
		}
		if err != nil || !strings.HasPrefix(h, c.prefix) {
			t.Errorf("cost %+v: %q, %v; want %s…", c.cost, h, err, c.prefix)
			continue
		}
		for pw, want := range map[string]bool{"correct horse": true, "correct horsE": false} {
			if ok, err := VerifyPassword(h, pw); err != nil || ok != want {
				t.Errorf("cost %+v: VerifyPassword(%q) = %v, %v; want %v", c.cost, pw, ok, err, want)
			}
		}
	}
}

func TestVerifyRefusesMalformedHashes(t *testing.T) {
	for _, h := range []string{"", "plain", "$argon2i$v=19$m=1,t=1,p=1$AAAA$AAAA", "$argon2id$v=19$m=99999999,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=64,t=1,p=1$!!$AAAAAAAAAAAAAAAAAAAAAA"} {
		if ok, err := VerifyPassword(h, "x"); ok || err == nil {
			t.Errorf("VerifyPassword(%q) = %v, %v; want an error", h, ok, err)
		}
	}
}

func TestStatic(t *testing.T) {
	s := NewStatic("secret")
	if !s.Matches("secret") || s.Matches("secreT") || s.Matches("") || !s.Set() {
		t.Error("static secret comparison is wrong")
	}
	var zero Static
	if zero.Matches("") || zero.Set() {
		t.Error("the zero Static must match nothing")
	}
}

// At most n argon2id checks run at once; a caller over the bound waits,
// and gives up when its context ends.
func TestPasswordCheckerBound(t *testing.T) {
	h, err := HashPassword("right")
	if err != nil {
		t.Fatal(err)
	}
	c := NewPasswordChecker(1)
	release, err := c.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Verify(ctx, h, "right"); !errors.Is(err, context.Canceled) {
		t.Fatalf("over the bound with an ended context: %v, want context.Canceled", err)
	}
	release()
	if ok, err := c.Verify(context.Background(), h, "right"); !ok || err != nil {
		t.Fatalf("Verify: %v %v", ok, err)
	}
	if ok, _ := c.Verify(context.Background(), h, "wrong"); ok {
		t.Fatal("a wrong password verified")
	}
	var unbounded *PasswordChecker
	if ok, err := unbounded.Verify(context.Background(), h, "right"); !ok || err != nil {
		t.Fatalf("nil checker: %v %v", ok, err)
	}
	if len(NewPasswordChecker(0).slots) != 0 || cap(NewPasswordChecker(0).slots) < 1 {
		t.Fatal("the default bound is not at least one")
	}
}

// A remembering checker accepts a pair it accepted before without argon2id
// (so without a slot: with the only slot held and an ended context it still
// answers), until the pair's time is up; a wrong password, another stored
// hash (a changed password) and an expired pair all need argon2id again.
func TestRememberingPasswordChecker(t *testing.T) {
	h, err := HashPassword("right")
	if err != nil {
		t.Fatal(err)
	}
	changed, err := HashPassword("right")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	c := NewRememberingPasswordChecker(1, func() time.Time { return now }, 15*time.Minute)
	for _, pw := range []string{"right", "wrong"} {
		c.Verify(context.Background(), h, pw)
	}
	release, err := c.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	steps := []struct {
		name     string
		advance  time.Duration
		encoded  string
		password string
		ok       bool
		err      error
	}{
		{"accepted before", 0, h, "right", true, nil},
		{"14 minutes later", 14 * time.Minute, h, "right", true, nil},
		{"refused before", 0, h, "wrong", false, context.Canceled},
		{"password changed", 0, changed, "right", false, context.Canceled},
		{"15 minutes after", time.Minute, h, "right", false, context.Canceled},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		ok, err := c.Verify(ended, s.encoded, s.password)
		if ok != s.ok || !errors.Is(err, s.err) {
			t.Errorf("%s: Verify = %v, %v; want %v, %v", s.name, ok, err, s.ok, s.err)
		}
	}
}

// TestWaitersUsePairAcceptedMeanwhile: requests that missed the remembered
// pairs and queued for the only argon2id slot look again once they hold
// it, so a burst of one user's first requests runs argon2id once. The pair
// is remembered while they wait, under a hash of another password: any of
// them that ran argon2id would be refused.
func TestWaitersUsePairAcceptedMeanwhile(t *testing.T) {
	other, err := HashPassword("other")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	c := NewRememberingPasswordChecker(1, func() time.Time { return now }, 15*time.Minute)
	release, err := c.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	const waiters = 16
	results := make(chan error, waiters)
	var missed []chan struct{}
	for range waiters {
		spy := &doneSpy{Context: context.Background(), asked: make(chan struct{})}
		missed = append(missed, spy.asked)
		go func() {
			ok, err := c.Verify(spy, other, "right")
			if err == nil && !ok {
				err = errors.New("refused: it ran argon2id")
			}
			results <- err
		}()
	}
	// Acquire asks for ctx.Done() while it waits for the slot: by then
	// each has missed the remembered pairs once.
	for _, asked := range missed {
		<-asked
	}
	c.accepted.Put(c.pair(other, "right"), struct{}{}, now.Add(time.Minute), now)
	release()
	for range waiters {
		if err := <-results; err != nil {
			t.Error(err)
		}
	}
}

// doneSpy closes asked the first time Done is called.
type doneSpy struct {
	context.Context
	asked chan struct{}
	once  sync.Once
}

func (d *doneSpy) Done() <-chan struct{} {
	d.once.Do(func() { close(d.asked) })
	return d.Context.Done()
}

// A name's tag is the same for the same key and name (every node, every
// run), another for another name or key, and 64 bits long. Its first 32
// bits are the tag the console wrote before it was lengthened, so an older
// event's tag is a prefix of a newer one's for the same name.
func TestNameTag(t *testing.T) {
	cases := []struct {
		key, name, want string
	}{
		{"store key", "Tr0ub4dor&3", "2e4c99e24d848f17"},
		{"store key", "Tr0ub4dor&4", "8299ac28e58e863d"},
		{"other key", "Tr0ub4dor&3", "e0631f71041297db"},
		{"store key", "", "9729463aa3fea868"},
	}
	for _, c := range cases {
		if got := NameTag([]byte(c.key), c.name); got != c.want {
			t.Errorf("NameTag(%q, %q) = %q, want %q", c.key, c.name, got, c.want)
		}
	}
}
