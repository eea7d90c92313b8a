package notify_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/notify"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/store"
)

// slowDataSMTP is an SMTP server on 127.0.0.1 that takes every message
// and answers its end after delay with answer, or (answer "") never,
// holding the connection until the client closes it, as a mail server
// scanning a message at length does. It counts the messages it received
// whole.
func slowDataSMTP(t *testing.T, delay time.Duration, answer string) (addr string, received *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	received = new(atomic.Int32)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(time.Minute))
				r := bufio.NewReader(conn)
				say := func(lines ...string) { _, _ = io.WriteString(conn, strings.Join(lines, "\r\n")+"\r\n") }
				say("220 localhost ESMTP")
				inData := false
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
					case inData:
						if line == ".\r\n" {
							received.Add(1)
							inData = false
							if answer == "" {
								_, _ = io.Copy(io.Discard, r) // until the client hangs up
								return
							}
							time.Sleep(delay) // the server scanning the message
							say(answer)
						}
					case strings.HasPrefix(cmd, "EHLO"):
						say("250-localhost", "250 8BITMIME")
					case cmd == "DATA":
						inData = true
						say("354 go ahead")
					case cmd == "QUIT":
						say("221 bye")
						return
					default: // MAIL, RCPT, NOOP, RSET
						say("250 ok")
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), received
}

// TestSMTPWaitsForAnswerToEndOfData: the answer to the end of a message
// is waited for the data timeout (RFC 5321's 10 minutes by default), not
// the command timeout: a server that scans a message for longer than the
// latter has taken it, and a send that gave up would send it again. No
// answer at all is an unknown outcome (it may have been delivered), a
// refusal is not.
func TestSMTPWaitsForAnswerToEndOfData(t *testing.T) {
	const cmdTimeout = 100 * time.Millisecond
	tests := []struct {
		name        string
		delay       time.Duration
		answer      string
		dataTimeout time.Duration
		wantErr     bool
		wantUnknown bool
	}{
		{"250 after the command timeout", 6 * cmdTimeout, "250 2.0.0 queued", 5 * time.Second, false, false},
		{"no answer", 0, "", 3 * cmdTimeout, true, true},
		{"451 after the command timeout", 3 * cmdTimeout, "451 4.7.1 try again later", 5 * time.Second, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, received := slowDataSMTP(t, tt.delay, tt.answer)
			m, err := notify.NewSMTP(notify.SMTPConfig{URL: "smtp://" + addr, From: "scepter@ca.example.com",
				Timeout: cmdTimeout, DataTimeout: tt.dataTimeout})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), m.SendBound())
			defer cancel()
			err = m.SendTest(ctx, "someone@example.com", t0)
			if (err != nil) != tt.wantErr {
				t.Errorf("err = %v, want error %v", err, tt.wantErr)
			}
			if got := errors.Is(err, notify.ErrOutcomeUnknown); got != tt.wantUnknown {
				t.Errorf("err = %v: outcome unknown %v, want %v", err, got, tt.wantUnknown)
			}
			if n := received.Load(); n != 1 {
				t.Errorf("the server received %d messages, want 1", n)
			}
		})
	}
}

// TestLeaseCoversLongestMailSend: a notification is leased for longer
// than a mail send may take, waiting for the answer to the end of the
// message included, so that no node sends it again meanwhile; a lease too
// short for it is refused.
func TestLeaseCoversLongestMailSend(t *testing.T) {
	st := newEnv(t).open()
	m, err := notify.NewSMTP(notify.SMTPConfig{URL: "smtp://127.0.0.1:25", From: "scepter@ca.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if m.SendBound() < notify.DefaultDataTimeout || m.SendBound() >= notify.DefaultLease {
		t.Errorf("longest send %v, default lease %v: want at least the data timeout %v, and shorter than the lease",
			m.SendBound(), notify.DefaultLease, notify.DefaultDataTimeout)
	}
	cfg := notify.Config{Store: st, Clock: pkitest.NewClock(t0), Channels: []notify.Channel{m}}
	if _, err := notify.New(cfg); err != nil {
		t.Errorf("defaults: %v", err)
	}
	cfg.Lease = 5 * time.Minute
	if _, err := notify.New(cfg); err == nil || !strings.Contains(err.Error(), "lease") {
		t.Errorf("a 5-minute lease for a mail send of %v: err = %v, want it refused", m.SendBound(), err)
	}
}

// TestUnknownOutcomeNotAuditedAsFailure: a mail whose end went
// unanswered may have been delivered. It is sent again later, and when a
// more urgent notification then replaces it, its notification.failed
// event says the outcome is unknown, not that it failed.
func TestUnknownOutcomeNotAuditedAsFailure(t *testing.T) {
	e := newEnv(t)
	st := e.open()
	addr, received := slowDataSMTP(t, 0, "")
	m, err := notify.NewSMTP(notify.SMTPConfig{URL: "smtp://" + addr, From: "scepter@ca.example.com",
		Timeout: time.Second, DataTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s, err := notify.New(notify.Config{Store: st, Clock: e.clock, Profiles: e.profiles, Channels: []notify.Channel{m}, Owner: "node",
		Log: slog.New(slog.NewTextHandler(e.log, nil)), Jitter: func() float64 { return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	cert(t, st, "1801", "default", t0, t0.Add(20*day))
	runOnce(t, s)
	if n := statuses(t, st, "1801")["smtp 30d"]; n.Status != store.NotificationPending || n.Attempts != 1 ||
		!strings.Contains(n.LastError, notify.ErrOutcomeUnknown.Error()) {
		t.Errorf("after an unanswered end of message: %+v", n)
	}
	if !strings.Contains(e.log.String(), "may have it; will send it again") {
		t.Errorf("log does not say the mail may have been delivered:\n%s", e.log.String())
	}
	e.clock.Set(t0.Add(13*day + time.Hour)) // under 7d left: 7d replaces 30d
	runOnce(t, s)
	evs, err := st.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventNotificationFailed})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Outcome != "unknown" || !strings.Contains(evs[0].Reason, "may have delivered it") ||
		!strings.Contains(evs[0].Reason, "replaced by the 7d notification") {
		t.Errorf("notification.failed events %+v, want one of outcome unknown saying it may have been delivered", evs)
	}
	if n := received.Load(); n < 2 {
		t.Errorf("the server received %d messages, want the 30d and the 7d", n)
	}
}
