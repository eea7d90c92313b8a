package notify_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/notify"
)

// hangingSMTP is an SMTP server that accepts every message and then,
// given the command hangOn (RSET or QUIT), answers nothing more, holding
// the connection until the client closes it. It returns its address, a
// count of the messages it accepted and a channel closed once the session
// has ended.
func hangingSMTP(t *testing.T, hangOn string) (addr string, accepted *atomic.Int32, ended <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted = new(atomic.Int32)
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		// Long past the client's timeout: only the client ends it.
		_ = conn.SetDeadline(time.Now().Add(time.Minute))
		r := bufio.NewReader(conn)
		say := func(lines ...string) { _, _ = io.WriteString(conn, strings.Join(lines, "\r\n")+"\r\n") }
		say("220 localhost ESMTP")
		inData, hung := false, false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
			case hung:
			case inData:
				if line == ".\r\n" {
					accepted.Add(1)
					inData = false
					say("250 2.0.0 queued")
				}
			case cmd == hangOn:
				hung = true
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
	return ln.Addr().String(), accepted, done
}

// TestSMTPAcceptedThenHangsIsSentAtOnce: once the server has answered 250
// to the end of DATA, the send is done. A server that then hangs on QUIT
// (or on a RSET) does not hold the send, and with it the notification's
// lease, for the command timeout: it returns delivered within about a
// second, and the connection is closed.
func TestSMTPAcceptedThenHangsIsSentAtOnce(t *testing.T) {
	for _, hangOn := range []string{"QUIT", "RSET"} {
		t.Run(hangOn, func(t *testing.T) {
			addr, accepted, ended := hangingSMTP(t, hangOn)
			const timeout = 10 * time.Second
			m, err := notify.NewSMTP(notify.SMTPConfig{URL: "smtp://" + addr, From: "scepter@ca.example.com", Timeout: timeout})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*timeout)
			defer cancel()
			start := time.Now()
			err = m.SendTest(ctx, "someone@example.com", t0)
			took := time.Since(start)
			if err != nil {
				t.Errorf("accepted, then the server hangs on %s: err = %v, want delivered", hangOn, err)
			}
			if took > 2*time.Second {
				t.Errorf("accepted, then the server hangs on %s: the send took %v, want about a second at most", hangOn, took)
			}
			if n := accepted.Load(); n != 1 {
				t.Errorf("the server accepted %d messages, want 1", n)
			}
			select {
			case <-ended:
			case <-time.After(5 * time.Second):
				t.Errorf("the connection the server hangs on %s was left open", hangOn)
			}
		})
	}
}
