// Package notify tells people that certificates are about to expire.
//
// A Scheduler scans the inventory every Interval (and once at start) for
// certificates crossing a threshold before their NotAfter (per profile,
// pki.Profile.NotifyBefore; by default 30, 7 and 1 days), and sends one
// notification per certificate, threshold and channel (SMTP, webhook):
//
//   - the intent is recorded in the store before anything is sent, keyed
//     by (issuer, serial, threshold, channel) and inserted only if absent,
//     so schedulers on several nodes, or one restarted, record it once;
//   - a sender leases it (store.ClaimNotifications: of claimers racing, one
//     wins; a node claims only for the channels it has), one at a time
//     per channel, sends it, and records the outcome with its audit event
//     in one transaction (store.FinishNotification), which only the lease
//     holder may do. Each channel sends in a goroutine of its own, and
//     the scan runs in another, so a mail server that hangs holds only
//     the mail it is being sent: not the webhook, nor the recording of
//     new intents. A node that dies mid-send holds only the notifications
//     it was sending, one per channel at most: another node sends them
//     once the lease has run out, or the node, restarted under the same
//     Owner, at once. That is one window where a message can go out
//     twice: the receiver accepted it, and the sender died before it could
//     record so; the other is a mail server that never answers the end of
//     a message it took (ErrOutcomeUnknown). Messages carry a stable ID for
//     receivers to deduplicate;
//   - a failed send is tried again later with exponential backoff and
//     jitter, per channel: a mail outage does not resend the webhook;
//   - when several thresholds are crossed at once (a short-lived
//     certificate, a server that was down) only the most urgent is sent,
//     the others are recorded as skipped;
//   - a certificate that was renewed (another names it in RenewedFrom) or
//     revoked gets no further notification, an expired one none at all.
//
// Time comes from an injected pki.Clock; the package has no global state.
package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	mrand "math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// Channel names, as recorded in the store.
const (
	ChannelSMTP    = "smtp"
	ChannelWebhook = "webhook"
)

// Defaults of Config.
const (
	DefaultInterval = 10 * time.Minute
	// DefaultLease covers the longest mail send (SMTP.SendBound: with
	// the defaults 2 minutes to the end of the message and the 10 that
	// RFC 5321 gives the answer to it), so that no other node sends a
	// notification again while its sender still waits for that answer.
	DefaultLease       = 15 * time.Minute
	DefaultSendTimeout = 30 * time.Second
	DefaultBackoffBase = time.Minute
	DefaultBackoffMax  = time.Hour
	// DefaultBatchSize is one: a claim leases for DefaultLease, and a
	// node that dies holds what it claimed that long, so it claims only
	// what it sends next; a notification another node could send is not
	// left waiting behind its own. Notifications are few: a claim each
	// costs little.
	DefaultBatchSize = 1
	// maxRetryPoll bounds how long a due retry waits for the scheduler to
	// look, when Interval is longer.
	maxRetryPoll = 30 * time.Second
	// scanPage is how many candidates one store call returns.
	scanPage = 500
	// maxErrorLen bounds an error kept in the store or the audit trail.
	maxErrorLen = 500
)

// Channel delivers notifications one way.
type Channel interface {
	// Name is the channel's name in the store: ChannelSMTP, ChannelWebhook.
	Name() string
	// Wants reports whether the channel has anyone to tell about c under p
	// (the SMTP channel: any recipient).
	Wants(c *pki.Certificate, p *pki.Profile) bool
	// Send delivers one notification. An error means it was not
	// delivered and may be tried again.
	Send(ctx context.Context, m Message) error
}

// Message is one notification as a channel sends it.
type Message struct {
	// ID is the same for every send of one notification (a retry, or the
	// re-send after a crash), so receivers can drop duplicates:
	// "ISSUER_ID:SERIAL:THRESHOLD_SECONDS".
	ID          string
	Certificate pki.Certificate
	Profile     pki.Profile
	Threshold   time.Duration
	// Time is when it is sent, from the scheduler's clock.
	Time time.Time
	// Settled are the recipients that took the notification, or refused
	// it for good, in an earlier attempt: a channel with recipients
	// leaves them out, so nobody gets a second copy.
	Settled []string
}

// MessageID returns Message.ID for a notification.
func MessageID(k store.NotificationKey) string {
	return fmt.Sprintf("%s:%s:%d", k.IssuerID, k.SerialHex, int64(k.Threshold/time.Second))
}

// Config configures a Scheduler. Store, Clock and at least one channel are
// required; zero values elsewhere take the defaults.
type Config struct {
	Store store.Store
	Clock pki.Clock
	Log   *slog.Logger
	// Profiles are the configured profiles. A certificate of a profile not
	// among them (removed from the configuration since) is treated as of
	// pki.DefaultProfile.
	Profiles map[string]pki.Profile
	Channels []Channel
	// Owner names this scheduler in leases; by default host, process and
	// a random suffix. Two schedulers must never share one. A scheduler
	// takes back at once what is leased to its Owner on a channel (it
	// claims nothing on a channel while it sends on it, so that is left by
	// a process that died): an Owner
	// stable across restarts (serve's: host and an ID kept in its locked
	// data directory) lets a restarted node resend the notification it
	// died sending without waiting out the lease.
	Owner string
	// Interval between scans of the inventory (DefaultInterval).
	Interval time.Duration
	// RetryPoll is how often due retries are looked for between scans
	// (default: Interval, at most 30 s).
	RetryPoll time.Duration
	// Lease is how long a claimed notification is reserved for its sender
	// (DefaultLease); SendTimeout bounds one send (DefaultSendTimeout), or
	// a channel's SendBound when that is longer (mail), and must be
	// shorter. A notification is sent only while its lease has at least
	// that to run.
	Lease       time.Duration
	SendTimeout time.Duration
	// BackoffBase and BackoffMax shape the delay before try n+1 after n
	// failed ones: BackoffBase*2^(n-1), at most BackoffMax, of which a
	// random half is taken off (jitter), so nodes and certificates do not
	// retry in step.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// MaxAttempts gives a notification up after that many failed sends; 0
	// tries until the certificate expires or a more urgent notification
	// replaces it.
	MaxAttempts int
	// Jitter returns a number in [0, 1); math/rand/v2 by default. The
	// scheduler calls it from one goroutine at a time.
	Jitter func() float64
	// BatchSize is how many notifications one claim leases
	// (DefaultBatchSize): a node that dies holds them all for the lease.
	BatchSize int
	// Observer, when set, is told of every send tried (metrics).
	Observer Observer
}

// Observer is told of every notification send tried: its channel and its
// error (nil: delivered). A send cut short by shutdown is not reported.
// The channels send concurrently: an Observer must be safe for concurrent
// use.
type Observer interface {
	// Channels is called once, by New, with the names of the channels
	// the scheduler sends on, so that their counts start at 0.
	Channels(names []string)
	Delivered(channel string, err error)
	// GivenUp is told of each notification given up for good (recorded
	// failed, with its notification.failed audit event): its certificate
	// expired first, a more urgent one replaced it after failed tries,
	// or Config.MaxAttempts ran out. Delivered's failures count tries,
	// most of which are retried: only this counts notifications lost.
	GivenUp(channel string)
}

// Scheduler finds and sends expiry notifications. Run it in one goroutine
// (it starts its own: one that scans, and one per channel that sends);
// its methods must not be called concurrently with each other.
type Scheduler struct {
	cfg       Config
	log       *slog.Logger
	channels  map[string]Channel
	order     []Channel
	names     []string // of the channels
	state     map[string]*channelState
	maxBefore time.Duration
	jitterMu  sync.Mutex // Config.Jitter is called by the channels' senders
}

// channelState is what a scheduler remembers of a channel's sends: its
// last failure, named when a notification that waited behind it is given
// up at expiry without a try.
type channelState struct {
	mu          sync.Mutex
	lastFailure error
	failedAt    time.Time
}

func (c *channelState) failed(err error, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastFailure, c.failedAt = err, at
}

// last returns the channel's last failure and when it happened (nil: none).
func (c *channelState) last() (error, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastFailure, c.failedAt
}

// New checks cfg and returns a Scheduler.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Store == nil || cfg.Clock == nil {
		return nil, errors.New("notify: Store and Clock are required")
	}
	if len(cfg.Channels) == 0 {
		return nil, errors.New("notify: no channel configured")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.Interval, DefaultInterval)
	def(&cfg.RetryPoll, min(cfg.Interval, maxRetryPoll))
	def(&cfg.Lease, DefaultLease)
	def(&cfg.SendTimeout, DefaultSendTimeout)
	def(&cfg.BackoffBase, DefaultBackoffBase)
	def(&cfg.BackoffMax, DefaultBackoffMax)
	switch {
	case cfg.Interval < 0 || cfg.RetryPoll < 0 || cfg.Lease < 0 || cfg.SendTimeout < 0 || cfg.BackoffBase < 0 || cfg.BackoffMax < 0:
		return nil, errors.New("notify: durations must not be negative")
	case cfg.SendTimeout >= cfg.Lease:
		return nil, fmt.Errorf("notify: the send timeout (%v) must be shorter than the lease (%v)", cfg.SendTimeout, cfg.Lease)
	case cfg.BackoffMax < cfg.BackoffBase:
		return nil, errors.New("notify: BackoffMax must not be below BackoffBase")
	case cfg.MaxAttempts < 0:
		return nil, errors.New("notify: MaxAttempts must not be negative")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.Jitter == nil {
		cfg.Jitter = mrand.Float64
	}
	if cfg.Owner == "" {
		cfg.Owner = defaultOwner()
	}
	s := &Scheduler{cfg: cfg, log: cfg.Log, channels: map[string]Channel{}, state: map[string]*channelState{}}
	for _, ch := range cfg.Channels {
		if ch == nil {
			return nil, errors.New("notify: nil channel")
		}
		if _, dup := s.channels[ch.Name()]; dup {
			return nil, fmt.Errorf("notify: channel %s configured twice", ch.Name())
		}
		if d := s.sendTimeout(ch); d >= cfg.Lease {
			return nil, fmt.Errorf("notify: a send on the %s channel may take %v, which the lease (%v) must be longer than: "+
				"another node would send the notification again while this one waits for the answer", ch.Name(), d, cfg.Lease)
		}
		s.channels[ch.Name()] = ch
		s.state[ch.Name()] = &channelState{}
		s.order = append(s.order, ch)
		s.names = append(s.names, ch.Name())
	}
	if cfg.Observer != nil {
		cfg.Observer.Channels(slices.Clone(s.names))
	}
	s.maxBefore = slices.Max(append([]time.Duration{0}, pki.DefaultProfile().NotifyBefore...))
	for _, p := range cfg.Profiles {
		for _, d := range p.NotifyBefore {
			s.maxBefore = max(s.maxBefore, d)
		}
	}
	return s, nil
}

// sendBounder is a channel one send of which may take longer than
// Config.SendTimeout, and should be given that long (mail).
type sendBounder interface {
	SendBound() time.Duration
}

// sendTimeout bounds one send on ch.
func (s *Scheduler) sendTimeout(ch Channel) time.Duration {
	if b, ok := ch.(sendBounder); ok {
		return max(s.cfg.SendTimeout, b.SendBound())
	}
	return s.cfg.SendTimeout
}

func defaultOwner() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Owner is the name this scheduler leases notifications under.
func (s *Scheduler) Owner() string { return s.cfg.Owner }

// Run scans once, then every Interval, and sends what is due after each
// scan and every RetryPoll, until ctx ends; it returns once every send in
// flight has ended. The scan and each channel's sends run in goroutines
// of their own: a channel whose sends hang or fail holds back only its
// own notifications, never another channel's or the scan. Errors are
// logged.
func (s *Scheduler) Run(ctx context.Context) {
	if w := s.CrashWarning(); w != "" {
		s.log.Warn(w)
	}
	var wg sync.WaitGroup
	wakes := make([]chan struct{}, len(s.order))
	for i, ch := range s.order {
		wakes[i] = make(chan struct{}, 1)
		wg.Go(func() { s.sendLoop(ctx, ch, wakes[i]) })
	}
	s.scanLoop(ctx, wakes)
	wg.Wait()
}

// scanLoop scans at once and then every Interval until ctx ends, and
// after each scan wakes the channels' senders (without waiting for them:
// a sender busy with a send finds the new intents when it is done).
func (s *Scheduler) scanLoop(ctx context.Context, wakes []chan struct{}) {
	scan := func() {
		if _, err := s.Scan(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("expiry notifications", "err", err)
		}
		for _, w := range wakes {
			select {
			case w <- struct{}{}:
			default: // already woken
			}
		}
	}
	scan()
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			scan()
		}
	}
}

// sendLoop sends what is due on ch when woken by a scan and every
// RetryPoll, until ctx ends.
func (s *Scheduler) sendLoop(ctx context.Context, ch Channel, wake <-chan struct{}) {
	poll := time.NewTicker(s.cfg.RetryPoll)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-poll.C:
		}
		if _, err := s.deliverChannel(ctx, ch); err != nil && ctx.Err() == nil {
			s.log.Warn("expiry notifications: sending", "channel", ch.Name(), "err", err)
		}
	}
}

// CrashWarning says which configured notify_before thresholds are no
// longer than the lease: a node that dies sending one of those holds it
// until the lease runs out (unless it restarts under the same Owner), by
// which time the certificate may have expired. "" when there are none.
func (s *Scheduler) CrashWarning() string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(s.cfg.Profiles)) {
		var short []string
		for _, t := range s.cfg.Profiles[name].NotifyBefore {
			if t > 0 && t <= s.cfg.Lease {
				short = append(short, FormatThreshold(t))
			}
		}
		if len(short) > 0 {
			parts = append(parts, fmt.Sprintf("profile %s: %s", name, strings.Join(short, ", ")))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("expiry notifications: notify_before thresholds no longer than the %s lease (%s): a node that dies sending one "+
		"holds it until the lease runs out, unless it restarts, and the certificate may expire first; "+
		"give thresholds longer than %s", FormatThreshold(s.cfg.Lease), strings.Join(parts, "; "), FormatThreshold(s.cfg.Lease))
}

// RunOnce records the notifications that have become due and sends what
// is due, as one scheduled run does.
func (s *Scheduler) RunOnce(ctx context.Context) error {
	_, scanErr := s.Scan(ctx)
	_, sendErr := s.Deliver(ctx)
	return errors.Join(scanErr, sendErr)
}

// profile returns the settings for a certificate's profile.
func (s *Scheduler) profile(name string) pki.Profile {
	if p, ok := s.cfg.Profiles[name]; ok {
		return p
	}
	p := pki.DefaultProfile()
	p.Name = name
	return p
}

// Scan records the notifications due at the clock's now: for each
// certificate and channel that wants it, when the certificate crossed one
// or more of its profile's thresholds and was not notified on that
// channel at the most urgent of them yet, that one as pending and any
// other crossed one as skipped. It returns how many records it inserted.
func (s *Scheduler) Scan(ctx context.Context) (int, error) {
	now := s.cfg.Clock.Now()
	if s.maxBefore <= 0 {
		return 0, nil
	}
	total := 0
	// One pass per channel: what was notified on one says nothing about
	// another (a node may have only some of them, or a channel may be new).
	for _, ch := range s.order {
		q := store.ExpiryQuery{Now: now, Within: s.maxBefore, Channel: ch.Name(), Limit: scanPage}
		for {
			page, next, err := s.cfg.Store.ExpiringCertificates(ctx, q)
			if err != nil {
				return total, fmt.Errorf("notify: scan: %w", err)
			}
			var intents []store.Notification
			for i := range page {
				intents = append(intents, s.intents(now, ch, &page[i])...)
			}
			n, err := s.cfg.Store.RecordNotifications(ctx, intents)
			if err != nil {
				return total, fmt.Errorf("notify: scan: %w", err)
			}
			total += n
			if next == "" {
				break
			}
			q.Cursor = next
		}
	}
	return total, nil
}

func (s *Scheduler) intents(now time.Time, ch Channel, cand *store.ExpiringCertificate) []store.Notification {
	c := &cand.Certificate
	// The server's own certificates (HTTPS, OCSP responder) renew themselves.
	if c.Protocol == pki.ProtocolInternal {
		return nil
	}
	p := s.profile(c.Profile)
	left := c.NotAfter.Sub(now)
	lifetime := issuedFor(c)
	var crossed []time.Duration
	for _, t := range p.NotifyBefore {
		// A threshold not shorter than the certificate's lifetime is
		// crossed the moment it is issued: an "expires in 30 days" for
		// a new 30-day certificate only teaches people to ignore them.
		if t > 0 && left <= t && t < lifetime && !slices.Contains(crossed, t) {
			crossed = append(crossed, t)
		}
	}
	if len(crossed) == 0 {
		return nil
	}
	urgent := slices.Min(crossed)
	if cand.NotifiedThreshold != 0 && cand.NotifiedThreshold <= urgent {
		return nil // done already, or under way
	}
	if !ch.Wants(c, &p) {
		return nil
	}
	var out []store.Notification
	for _, t := range crossed {
		n := store.Notification{
			NotificationKey: store.NotificationKey{IssuerID: c.IssuerID, SerialHex: c.SerialHex, Threshold: t, Channel: ch.Name()},
			Status:          store.NotificationPending,
			NextAttemptAt:   now,
			CreatedAt:       now,
		}
		if t != urgent {
			n.Status = store.NotificationSkipped
			n.LastError = fmt.Sprintf("crossed together with the %s threshold, which alone is sent", FormatThreshold(urgent))
		}
		out = append(out, n)
	}
	return out
}

// issuedFor is how long c was valid for when it was issued: from its
// NotBefore, or for a certificate this CA issued from when it was
// recorded, if later: NotBefore is set back (a profile's backdate, 5
// minutes by default) for devices with slow clocks, which a 30-day
// certificate's 30-day threshold must not count as lifetime. An imported
// certificate counts from its NotBefore: it was issued elsewhere, and its
// thresholds crossed before the import are still news.
func issuedFor(c *pki.Certificate) time.Duration {
	start := c.NotBefore
	if c.Source != pki.SourceImported && c.CreatedAt.After(start) {
		start = c.CreatedAt
	}
	return c.NotAfter.Sub(start)
}

// Deliver sends the notifications that are due, on each channel in a
// goroutine of its own, and returns how many it sent once every channel
// has none left. A channel that fails is not tried again in the same
// call: its other due notifications wait for their backoff without a try.
func (s *Scheduler) Deliver(ctx context.Context) (int, error) {
	sent := make([]int, len(s.order))
	errs := make([]error, len(s.order))
	var wg sync.WaitGroup
	for i, ch := range s.order {
		wg.Go(func() { sent[i], errs[i] = s.deliverChannel(ctx, ch) })
	}
	wg.Wait()
	total := 0
	for _, n := range sent {
		total += n
	}
	return total, errors.Join(errs...)
}

// deliverChannel sends the notifications due on ch, batch by batch, until
// none is left, and returns how many it sent.
func (s *Scheduler) deliverChannel(ctx context.Context, ch Channel) (int, error) {
	sent := 0
	var down error // the channel's failure in this round
	for ctx.Err() == nil {
		claimedAt := s.cfg.Clock.Now()
		// Reclaim: this scheduler sends nothing on ch while it claims on
		// it, so what is leased to its Owner on ch was left by a process
		// that died.
		claimed, err := s.cfg.Store.ClaimNotifications(ctx, store.ClaimQuery{Owner: s.cfg.Owner, Channels: []string{ch.Name()},
			Now: claimedAt, Lease: s.cfg.Lease, MaxDelay: s.cfg.BackoffMax, Limit: s.cfg.BatchSize, Reclaim: true})
		if err != nil {
			return sent, fmt.Errorf("notify: claim on the %s channel: %w", ch.Name(), err)
		}
		if len(claimed) == 0 {
			break
		}
		for i := range claimed {
			if s.handle(ctx, &claimed[i], claimedAt, &down) {
				sent++
			}
		}
	}
	return sent, nil
}

// handle decides what to do with one claimed notification, sends it when
// it should go out, and records the outcome. It reports whether it sent it.
func (s *Scheduler) handle(ctx context.Context, cl *store.ClaimedNotification, claimedAt time.Time, down *error) bool {
	c := &cl.Certificate
	now := s.cfg.Clock.Now()
	p := s.profile(c.Profile)
	ch := s.channels[cl.Channel]
	// An outcome that sends nothing keeps the recipients settled so far.
	out := store.NotificationOutcome{NotificationKey: cl.NotificationKey, Owner: s.cfg.Owner, Now: now,
		Accepted: cl.Accepted, Refused: cl.Refused}
	pending := func(next time.Time, why string) {
		out.Status, out.NextAttemptAt, out.Error = store.NotificationPending, untilExpiry(next, c), why
	}
	superseded := cl.SupersededBy
	if superseded == 0 && ch != nil && c.Status == pki.StatusValid && !cl.Renewed && now.Before(c.NotAfter) {
		superseded = s.crossedSinceClaim(ctx, now, ch, cl)
	}
	switch {
	case c.Status == "":
		out.Status, out.Error = store.NotificationCancelled, "certificate not in the inventory"
	case c.Status == pki.StatusRevoked:
		out.Status, out.Error = store.NotificationCancelled, "certificate revoked"
	case cl.Renewed:
		out.Status, out.Error = store.NotificationCancelled, "certificate renewed"
	case !now.Before(c.NotAfter):
		s.giveUp(&out, cl, c, s.expiredReason(cl))
	case superseded != 0 && cl.Attempts == 0:
		out.Status, out.Error = store.NotificationSkipped, fmt.Sprintf("replaced by the %s notification", FormatThreshold(superseded))
	case superseded != 0 && outcomeUnknown(cl.LastError):
		s.giveUp(&out, cl, c, fmt.Sprintf("replaced by the %s notification after %d attempts, the last of which may have delivered it (%s)",
			FormatThreshold(superseded), cl.Attempts, cl.LastError))
	case superseded != 0:
		s.giveUp(&out, cl, c, fmt.Sprintf("replaced by the %s notification after %d failed attempts (last: %s)",
			FormatThreshold(superseded), cl.Attempts, cl.LastError))
	case ch == nil:
		// Not claimed for a channel this node lacks; should it happen,
		// leave it to a node that has the channel.
		pending(now.Add(s.cfg.BackoffMax), fmt.Sprintf("channel %s is not configured on %s", cl.Channel, s.cfg.Owner))
	case !ch.Wants(c, &p):
		out.Status, out.Error = store.NotificationCancelled, "nobody to tell any more (profile changed)"
	case *down != nil:
		pending(now.Add(s.backoff(cl.Attempts+1)), notTried+clip((*down).Error()))
	case now.Before(claimedAt):
		// The clock was set back since the claim: the lease, ending by
		// the clock as it was, may last longer here than it does for
		// the other nodes, which bring it back to one lease from their
		// now. Back in the queue at once, for a lease by this clock.
		pending(now, cl.LastError)
	case now.Add(s.sendTimeout(ch)).After(cl.ClaimedUntil):
		// Too little lease left to send safely: a slow batch. Back in the
		// queue at once; the next claim gives a fresh lease.
		pending(now, cl.LastError)
	default:
		return s.send(ctx, cl, ch, p, &out, down)
	}
	s.finish(ctx, &out)
	return false
}

// crossedSinceClaim is the more urgent threshold of cl's certificate that
// the clock has crossed on ch though the claim found none recorded (0:
// none): a scan that recorded it after the claim, here or on another node,
// or none yet. A more urgent threshold replaces the older notification
// (docs/notifications.md) as it is crossed, so the receiver never gets
// both in one round: the older is not sent, and the urgent one is recorded
// here as the scan records it (the first record of an intent wins), to be
// sent in its place. A store that cannot record it leaves the older one
// to be sent, as before the threshold was crossed.
func (s *Scheduler) crossedSinceClaim(ctx context.Context, now time.Time, ch Channel, cl *store.ClaimedNotification) time.Duration {
	intents := s.intents(now, ch, &store.ExpiringCertificate{Certificate: cl.Certificate})
	var urgent time.Duration
	for _, n := range intents {
		if n.Status == store.NotificationPending {
			urgent = n.Threshold
		}
	}
	if urgent == 0 || urgent >= cl.Threshold {
		return 0
	}
	if _, err := s.cfg.Store.RecordNotifications(ctx, intents); err != nil {
		s.log.Warn("expiry notifications: recording a more urgent threshold crossed since the claim", "channel", cl.Channel,
			"serial", pki.ShownSerial(cl.SerialHex), "threshold", FormatThreshold(urgent), "err", err)
		return 0
	}
	return urgent
}

// send sends one notification to whoever is still owed it and records
// the outcome.
func (s *Scheduler) send(ctx context.Context, cl *store.ClaimedNotification, ch Channel, p pki.Profile, out *store.NotificationOutcome, down *error) bool {
	c := &cl.Certificate
	settled := slices.Concat(cl.Accepted, cl.Refused)
	m := Message{ID: MessageID(cl.NotificationKey), Certificate: *c, Profile: p, Threshold: cl.Threshold, Time: out.Now,
		Settled: settled}
	sctx, cancel := context.WithTimeout(ctx, s.sendTimeout(ch))
	err := ch.Send(sctx, m)
	cancel()
	accepted, refused := slices.Clone(cl.Accepted), slices.Clone(cl.Refused)
	var partial *RecipientsError
	if errors.As(err, &partial) {
		accepted = append(accepted, partial.Accepted...)
		refused = append(refused, partial.Refused...)
		err = partial.Err
	} else if err == nil {
		accepted = append(accepted, owed(ch, c, &p, settled)...)
	}
	// The event of this attempt names the refusals it met, even those
	// the store forgets so that the next attempt writes to everyone.
	evAccepted, evRefused := accepted, refused
	if err == nil && len(accepted) == 0 && len(refused) > 0 {
		// Every recipient refused it: a failure, as for one that was
		// never reached (a relay refusing everyone is often the cause,
		// and gets fixed); the next attempt writes to all of them again.
		err = fmt.Errorf("every recipient refused it for good: %s", strings.Join(refused, ", "))
		refused = nil
	}
	out.Accepted, out.Refused = accepted, refused
	if len(refused) > len(cl.Refused) {
		s.log.Warn("expiry notification: the mail server refused some recipients for good", "serial", pki.ShownSerial(c.SerialHex),
			"refused", strings.Join(refused[len(cl.Refused):], ", "))
	}
	if s.cfg.Observer != nil && (err == nil || ctx.Err() == nil) {
		s.cfg.Observer.Delivered(cl.Channel, err)
	}
	now := s.cfg.Clock.Now()
	out.Now = now
	attempts := cl.Attempts + 1
	switch {
	case err == nil:
		out.Status, out.Attempted = store.NotificationSent, true
		out.Events = []pki.AuditEvent{s.event(pki.EventNotificationSent, cl, ch, p, attempts, "", evAccepted, evRefused)}
		s.log.Info("expiry notification sent", "channel", cl.Channel, "serial", pki.ShownSerial(c.SerialHex), "subject", c.Subject,
			"threshold", FormatThreshold(cl.Threshold), "not_after", c.NotAfter.Format(time.RFC3339))
	case ctx.Err() != nil:
		// Shutting down: not a failure of the channel. Back in the queue
		// for whichever node looks next.
		out.Status, out.NextAttemptAt = store.NotificationPending, now
		out.Error = cl.LastError
	default:
		if partial == nil || len(partial.Accepted) == 0 {
			// One recipient putting it off while others took it says
			// nothing of the channel's other notifications.
			*down = err
			s.state[cl.Channel].failed(err, now)
		}
		out.Attempted = true
		out.Error = clip(err.Error())
		unknown := errors.Is(err, ErrOutcomeUnknown)
		switch {
		case s.cfg.MaxAttempts > 0 && attempts >= s.cfg.MaxAttempts:
			out.Status = store.NotificationFailed
			why := fmt.Sprintf("gave up after %d attempts: %s", attempts, out.Error)
			if unknown {
				why = fmt.Sprintf("stopped after %d attempts, the last of which may have delivered it: %s", attempts, out.Error)
			}
			ev := s.event(pki.EventNotificationFailed, cl, ch, p, attempts, why, evAccepted, evRefused)
			if unknown {
				ev.Outcome = outcomeUnknownAudit
			}
			out.Events = []pki.AuditEvent{ev}
			s.log.Error("expiry notification given up", "channel", cl.Channel, "serial", pki.ShownSerial(c.SerialHex), "attempts", attempts, "err", err)
		case unknown:
			// RFC 5321 §6.1: a message whose answer never came is sent
			// again; a second copy (same Message-ID) beats a lost one.
			out.Status, out.NextAttemptAt = store.NotificationPending, untilExpiry(now.Add(s.backoff(attempts)), c)
			s.log.Warn("expiry notification: the mail server did not answer the end of the message and may have it; will send it again",
				"channel", cl.Channel, "serial", pki.ShownSerial(c.SerialHex), "attempts", attempts, "next_attempt", out.NextAttemptAt.Format(time.RFC3339), "err", err)
		case partial != nil && len(partial.Accepted) > 0:
			// Sent, to some: the log must not say it went to nobody.
			out.Status, out.NextAttemptAt = store.NotificationPending, untilExpiry(now.Add(s.backoff(attempts)), c)
			rest := owed(ch, c, &p, slices.Concat(accepted, refused))
			s.log.Warn(fmt.Sprintf("expiry notification reached %d of %d recipients; will retry for the rest", len(accepted), len(accepted)+len(refused)+len(rest)),
				"channel", cl.Channel, "serial", pki.ShownSerial(c.SerialHex), "delivered_to", strings.Join(accepted, ", "),
				"retry_for", strings.Join(rest, ", "), "attempts", attempts, "next_attempt", out.NextAttemptAt.Format(time.RFC3339), "err", err)
		default:
			out.Status, out.NextAttemptAt = store.NotificationPending, untilExpiry(now.Add(s.backoff(attempts)), c)
			s.log.Warn("expiry notification not sent; will retry", "channel", cl.Channel, "serial", pki.ShownSerial(c.SerialHex),
				"attempts", attempts, "next_attempt", out.NextAttemptAt.Format(time.RFC3339), "err", err)
		}
	}
	s.finish(ctx, out)
	return err == nil
}

// untilExpiry is next, the time a notification of c is due again, but not
// after c expires: one still pending then is given up (handle) as the
// certificate expires, not at a retry up to BackoffMax later.
func untilExpiry(next time.Time, c *pki.Certificate) time.Time {
	if !c.NotAfter.IsZero() && next.After(c.NotAfter) {
		return c.NotAfter
	}
	return next
}

// recipientLister is a channel with recipients of its own (mail).
type recipientLister interface {
	Recipients(*pki.Certificate, *pki.Profile) []string
}

// owed are the recipients of ch for c under p that are not settled.
func owed(ch Channel, c *pki.Certificate, p *pki.Profile, settled []string) []string {
	r, ok := ch.(recipientLister)
	if !ok {
		return nil
	}
	done := map[string]bool{}
	for _, a := range settled {
		done[addressKey(a)] = true
	}
	var out []string
	for _, a := range r.Recipients(c, p) {
		if !done[addressKey(a)] {
			out = append(out, a)
		}
	}
	return out
}

// outcomeUnknownAudit is the Outcome of a notification.failed event whose
// last attempt may have delivered it: not a failure, and not a success.
const outcomeUnknownAudit = "unknown"

// outcomeUnknown reports whether a notification's last error says its
// last attempt may have delivered it.
func outcomeUnknown(lastError string) bool {
	return strings.Contains(lastError, ErrOutcomeUnknown.Error())
}

// notTried begins the last error of a notification put off without a try
// because its channel had just failed.
const notTried = "not tried: the channel failed just before: "

// expiredReason is why a notification whose certificate expired first is
// given up. One never tried says why, as far as this node knows: its
// channel failing (the error), or busy with others' sends or hanging
// (its last failure here since the notification became due, if any), so
// the reason does not blame the expiry alone.
func (s *Scheduler) expiredReason(cl *store.ClaimedNotification) string {
	const why = "certificate expired before the notification was delivered"
	if cl.Attempts > 0 {
		return why
	}
	// "No try recorded", not "never tried": a send cut short by a kill
	// leaves no record, and may have reached the receiver.
	never := fmt.Sprintf("%s; no try of it was recorded (a send cut short by a crash leaves none), due since %s", why, cl.CreatedAt.UTC().Format(time.RFC3339))
	if rest, ok := strings.CutPrefix(cl.LastError, notTried); ok {
		return fmt.Sprintf("%s: the %s channel was failing (%s)", never, cl.Channel, rest)
	}
	if cl.LastError != "" {
		return fmt.Sprintf("%s: %s", never, cl.LastError)
	}
	if st := s.state[cl.Channel]; st != nil {
		if err, at := st.last(); err != nil && !at.Before(cl.CreatedAt) {
			return fmt.Sprintf("%s: the %s channel was busy or failing; its last send failed at %s: %s",
				never, cl.Channel, at.UTC().Format(time.RFC3339), clip(err.Error()))
		}
	}
	return fmt.Sprintf("%s: the %s channel was busy with other notifications, or no node could send on it", never, cl.Channel)
}

// giveUp marks a notification failed for good, with its audit event; one
// whose last attempt may have delivered it has the outcome "unknown".
func (s *Scheduler) giveUp(out *store.NotificationOutcome, cl *store.ClaimedNotification, c *pki.Certificate, why string) {
	if outcomeUnknown(cl.LastError) && !strings.Contains(why, cl.LastError) {
		why += "; the last attempt may have delivered it (" + cl.LastError + ")"
	}
	out.Status, out.Error = store.NotificationFailed, clip(why)
	ev := s.event(pki.EventNotificationFailed, cl, s.channels[cl.Channel], s.profile(c.Profile), cl.Attempts, out.Error,
		cl.Accepted, cl.Refused)
	if outcomeUnknown(cl.LastError) {
		ev.Outcome = outcomeUnknownAudit
	}
	out.Events = []pki.AuditEvent{ev}
	s.log.Warn("expiry notification given up", "channel", cl.Channel, "serial", pki.ShownSerial(c.SerialHex), "reason", why)
}

// finish records an outcome. It runs even when ctx has ended (a send that
// went out must be recorded, or it goes out again), bounded on its own.
func (s *Scheduler) finish(ctx context.Context, out *store.NotificationOutcome) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.cfg.Store.FinishNotification(fctx, *out); err != nil {
		if errors.Is(err, store.ErrConflict) {
			s.log.Warn("expiry notification: lease lost to another node before the outcome was recorded",
				"channel", out.Channel, "serial", pki.ShownSerial(out.SerialHex), "status", out.Status)
			return
		}
		s.log.Error("expiry notification: recording the outcome", "channel", out.Channel, "serial", pki.ShownSerial(out.SerialHex),
			"status", out.Status, "err", err)
		return
	}
	// Counted once it is recorded: a give-up the store did not take is
	// decided again by whichever node claims the notification next.
	if out.Status == store.NotificationFailed && s.cfg.Observer != nil {
		s.cfg.Observer.GivenUp(out.Channel)
	}
}

// event is the audit record of a notification sent or given up; accepted
// and refused are the recipients that have it and those that refused it
// for good, over all attempts.
func (s *Scheduler) event(typ string, cl *store.ClaimedNotification, ch Channel, p pki.Profile, attempts int, reason string,
	accepted, refused []string) pki.AuditEvent {
	c := &cl.Certificate
	detail := map[string]any{
		"channel":   cl.Channel,
		"threshold": FormatThreshold(cl.Threshold),
		"attempts":  attempts,
		"not_after": c.NotAfter.UTC().Format(time.RFC3339),
		"id":        MessageID(cl.NotificationKey),
	}
	if r, ok := ch.(recipientLister); ok && ch != nil {
		addRecipients(detail, typ, r.Recipients(c, &p), accepted, refused)
	}
	b, _ := json.Marshal(detail)
	ev := pki.AuditEvent{Type: typ, Actor: "system", Profile: c.Profile, SerialHex: cl.SerialHex, IssuerID: cl.IssuerID,
		Subject: c.Subject, Outcome: "success", Detail: string(b)}
	if typ == pki.EventNotificationFailed {
		ev.Outcome, ev.Reason = "failure", reason
	}
	return ev
}

// addRecipients names, in an event's detail, the recipients of a mail
// notification by what became of it: "delivered_to" (those that have it),
// "refused" (refused for good) and "not_delivered" (the rest: put off, or
// never reached), so a failed notification does not pass for one nobody
// got. "recipients" keeps its meaning for existing readers: in a sent
// notification's event those that have it, in a failed one all of them.
func addRecipients(detail map[string]any, typ string, all, accepted, refused []string) {
	settled := map[string]bool{}
	for _, a := range slices.Concat(accepted, refused) {
		settled[addressKey(a)] = true
	}
	notDelivered := []string{}
	for _, a := range all {
		if !settled[addressKey(a)] {
			notDelivered = append(notDelivered, a)
		}
	}
	detail["delivered_to"] = append([]string{}, accepted...)
	detail["refused"] = append([]string{}, refused...)
	detail["not_delivered"] = notDelivered
	if typ == pki.EventNotificationSent {
		detail["recipients"] = append([]string{}, accepted...)
	} else {
		detail["recipients"] = append([]string{}, all...)
	}
}

// backoff is the delay before the try after n failed ones.
func (s *Scheduler) backoff(n int) time.Duration {
	d := s.cfg.BackoffBase
	for i := 1; i < n && d < s.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, s.cfg.BackoffMax)
	s.jitterMu.Lock()
	j := min(max(s.cfg.Jitter(), 0), 1)
	s.jitterMu.Unlock()
	return d/2 + time.Duration(j*float64(d/2))
}

// clip bounds an error kept in the store or the audit trail.
func clip(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) <= maxErrorLen {
		return s
	}
	cut := maxErrorLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// FormatThreshold writes a threshold as a configuration most likely
// does, in its largest whole unit: "7d", "36h", "90m", "230s" (Go's
// "1h30m0s" and "3m50s" match nothing anyone wrote). A threshold that is
// no whole number of seconds keeps Go's form ("1.5s"). Only the text
// changes with this: the store keys notifications on the duration.
func FormatThreshold(d time.Duration) string {
	if d <= 0 || d%time.Second != 0 {
		return d.String()
	}
	for _, u := range []struct {
		size time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}} {
		if d%u.size == 0 {
			return fmt.Sprintf("%d%s", d/u.size, u.name)
		}
	}
	return fmt.Sprintf("%ds", d/time.Second)
}
