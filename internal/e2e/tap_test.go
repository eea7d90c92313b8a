package e2e

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// tap is a byte-exact TCP relay on 127.0.0.1 in front of a server: it
// forwards every byte unchanged both ways and keeps a copy, so a test can
// check what a real client put on the wire (method, headers, envelope
// cipher) and what the server answered, without altering either side.
type tap struct {
	t      testing.TB
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns []*tapConn
	wg    sync.WaitGroup
}

type tapConn struct {
	mu       sync.Mutex
	up, down bytes.Buffer // client->server, server->client
}

func (c *tapConn) snapshot() ([]byte, []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.up.Bytes()), bytes.Clone(c.down.Bytes())
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// startTap relays 127.0.0.1:random to target ("127.0.0.1:PORT"); it returns
// the tap, whose Base is "http://127.0.0.1:TAPPORT".
func startTap(t testing.TB, target string) *tap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp := &tap{t: t, ln: ln, target: target}
	go tp.accept()
	t.Cleanup(func() {
		ln.Close()
		tp.wg.Wait()
	})
	return tp
}

// Base is the tap's http://127.0.0.1:PORT.
func (tp *tap) Base() string { return "http://" + tp.ln.Addr().String() }

func (tp *tap) accept() {
	for {
		c, err := tp.ln.Accept()
		if err != nil {
			return
		}
		tc := &tapConn{}
		tp.mu.Lock()
		tp.conns = append(tp.conns, tc)
		tp.mu.Unlock()
		tp.wg.Add(1)
		go func() {
			defer tp.wg.Done()
			defer c.Close()
			s, err := net.Dial("tcp", tp.target)
			if err != nil {
				return
			}
			defer s.Close()
			done := make(chan struct{}, 2)
			// Record before forwarding: once a peer has a byte, so does the
			// record (a client may exit, and the test read the record, the
			// moment the last reply byte reaches it).
			go func() {
				io.Copy(io.MultiWriter(lockedWriter{&tc.mu, &tc.up}, s), c)
				if cw, ok := s.(*net.TCPConn); ok {
					cw.CloseWrite()
				}
				done <- struct{}{}
			}()
			go func() {
				io.Copy(io.MultiWriter(lockedWriter{&tc.mu, &tc.down}, c), s)
				if cw, ok := c.(*net.TCPConn); ok {
					cw.CloseWrite()
				}
				done <- struct{}{}
			}()
			<-done
			<-done
		}()
	}
}

// exchange is one request and its response as they crossed the wire.
type exchange struct {
	Method    string
	Proto     string
	RawQuery  string
	Header    http.Header // request headers as sent
	Body      []byte      // request body
	Operation string
	Message   []byte // PKIOperation pkiMessage (POST body, or GET message decoded)

	Status      int
	RespHeader  http.Header
	RespBody    []byte
	ParseErrors string
}

// Exchanges parses everything relayed so far.
func (tp *tap) Exchanges() []exchange {
	tp.mu.Lock()
	conns := append([]*tapConn(nil), tp.conns...)
	tp.mu.Unlock()
	var out []exchange
	for _, c := range conns {
		up, down := c.snapshot()
		ur := bufio.NewReader(bytes.NewReader(up))
		dr := bufio.NewReader(bytes.NewReader(down))
		for {
			req, err := http.ReadRequest(ur)
			if err != nil {
				break
			}
			var ex exchange
			ex.Method, ex.Proto, ex.Header = req.Method, req.Proto, req.Header
			ex.RawQuery = req.URL.RawQuery
			ex.Body, _ = io.ReadAll(req.Body)
			ex.Operation = queryParam(ex.RawQuery, "operation")
			if ex.Operation == "PKIOperation" {
				if ex.Method == http.MethodPost {
					ex.Message = ex.Body
				} else if m, err := decodeGETMessage(ex.RawQuery); err == nil {
					ex.Message = m
				} else {
					ex.ParseErrors += "GET message: " + err.Error() + "; "
				}
			}
			resp, err := http.ReadResponse(dr, req)
			if err == nil {
				ex.Status, ex.RespHeader = resp.StatusCode, resp.Header
				ex.RespBody, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
			} else {
				ex.ParseErrors += "response: " + err.Error() + "; "
			}
			out = append(out, ex)
		}
	}
	return out
}

// PKIOperations returns the PKIOperation exchanges.
func (tp *tap) PKIOperations() []exchange {
	var ops []exchange
	for _, ex := range tp.Exchanges() {
		if ex.Operation == "PKIOperation" {
			ops = append(ops, ex)
		}
	}
	return ops
}

// queryParam reads a parameter from a raw query without decoding '+' (the
// base64 of a GET PKIOperation may carry raw '+').
func queryParam(raw, name string) string {
	for _, kv := range strings.Split(raw, "&") {
		k, v, _ := strings.Cut(kv, "=")
		if k == name {
			return v
		}
	}
	return ""
}

func decodeGETMessage(raw string) ([]byte, error) {
	v := queryParam(raw, "message")
	if v == "" {
		return nil, fmt.Errorf("no message parameter")
	}
	// url-escaped base64; keep raw '+' as '+'.
	v = strings.ReplaceAll(v, "+", "%2B")
	u, err := url.QueryUnescape(v)
	if err != nil {
		return nil, err
	}
	u = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, u)
	return base64.StdEncoding.DecodeString(u)
}

// DER encodings of the OIDs the tests look for in a pkiMessage. The
// pkcsPKIEnvelope sits unencrypted inside the SignedData, so its
// contentEncryptionAlgorithm OID is visible in the bytes.
var cipherOIDs = []struct {
	name string
	der  []byte
}{
	{"DES-CBC", []byte{0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x07}},
	{"DES-EDE3-CBC", []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x03, 0x07}},
	{"AES-128-CBC", []byte{0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02}},
	{"AES-192-CBC", []byte{0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x16}},
	{"AES-256-CBC", []byte{0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a}},
}

// envelopeCiphers names the content ciphers whose OIDs appear in msg.
func envelopeCiphers(msg []byte) []string {
	var names []string
	for _, c := range cipherOIDs {
		if bytes.Contains(msg, c.der) {
			names = append(names, c.name)
		}
	}
	return names
}

// envelopeCipher returns the one cipher in msg, or a description of what
// was found instead.
func envelopeCipher(msg []byte) string {
	n := envelopeCiphers(msg)
	if len(n) == 1 {
		return n[0]
	}
	return fmt.Sprintf("%v", n)
}

// describe summarises an exchange for failure messages.
func (ex exchange) describe() string {
	return fmt.Sprintf("%s %s (query %d bytes, Content-Type %q, body %d bytes, request cipher %s) -> HTTP %d %q, %d bytes, reply cipher %s %s",
		ex.Method, ex.Proto, len(ex.RawQuery), ex.Header.Get("Content-Type"), len(ex.Body), envelopeCipher(ex.Message),
		ex.Status, ex.RespHeader.Get("Content-Type"), len(ex.RespBody), envelopeCipher(ex.RespBody), ex.ParseErrors)
}

// expectWire checks the single PKIOperation seen by tp: its method, whether
// it had a Content-Type, and the envelope ciphers of request and reply.
type wantWire struct {
	method          string // "GET" or "POST"
	noContentType   bool   // the client sends POST without Content-Type
	reqCipher       string // e.g. "DES-CBC"; "" for any
	reqCipherPrefix string // e.g. "AES-" when the exact size does not matter
	replyCipher     string // "" for any
	replyNot        string // a cipher the reply must not use
	replySame       bool   // the reply uses the request's cipher
	minQuery        int    // GET: the smallest query length expected
}

func expectWire(t testing.TB, tp *tap, w wantWire) {
	t.Helper()
	ops := tp.PKIOperations()
	if len(ops) == 0 {
		t.Errorf("no PKIOperation crossed the tap (%d exchanges)", len(tp.Exchanges()))
		return
	}
	for _, ex := range ops {
		t.Logf("on the wire: %s", ex.describe())
		if w.method != "" && ex.Method != w.method {
			t.Errorf("PKIOperation sent as %s, want %s: %s", ex.Method, w.method, ex.describe())
		}
		if w.noContentType {
			if _, ok := ex.Header["Content-Type"]; ok {
				t.Errorf("expected a POST without Content-Type (this client's habit), got %q", ex.Header.Get("Content-Type"))
			}
		}
		if len(ex.RawQuery) < w.minQuery {
			t.Errorf("GET query of %d bytes, expected at least %d", len(ex.RawQuery), w.minQuery)
		}
		rc := envelopeCipher(ex.Message)
		if w.reqCipher != "" && rc != w.reqCipher {
			t.Errorf("request envelope cipher %s, want %s", rc, w.reqCipher)
		}
		if w.reqCipherPrefix != "" && !strings.HasPrefix(rc, w.reqCipherPrefix) {
			t.Errorf("request envelope cipher %s, want %s*", rc, w.reqCipherPrefix)
		}
		if ex.Status != http.StatusOK {
			t.Errorf("PKIOperation answered HTTP %d: %s", ex.Status, ex.describe())
			continue
		}
		pc := envelopeCipher(ex.RespBody)
		if w.replyCipher != "" && pc != w.replyCipher {
			t.Errorf("reply envelope cipher %s, want %s", pc, w.replyCipher)
		}
		if w.replySame && pc != rc {
			t.Errorf("reply envelope cipher %s, the request used %s", pc, rc)
		}
		if w.replyNot != "" && strings.Contains(pc, w.replyNot) {
			t.Errorf("reply envelope uses %s", pc)
		}
	}
}
