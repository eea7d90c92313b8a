package server_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/scepter/scepter/internal/server"
)

// A client that offers ALPN http/1.0 alone (curl -0) or http/1.1 is
// answered over HTTP/1, not refused in the handshake.
func TestTLSNegotiatesHTTP1(t *testing.T) {
	cert := &selfSigned(t).Certificates[0]
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) }))
	srv.TLS = server.TLSConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil }, 0, 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	for _, proto := range []string{"http/1.0", "http/1.1"} {
		c, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{proto}})
		if err != nil {
			t.Errorf("ALPN %s: %v", proto, err)
			continue
		}
		if got := c.ConnectionState().NegotiatedProtocol; got != proto {
			t.Errorf("ALPN %s: negotiated %q", proto, got)
		}
		io.WriteString(c, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")
		b, _ := io.ReadAll(c)
		c.Close()
		if len(b) < 12 || string(b[:12]) != "HTTP/1.0 200" {
			t.Errorf("ALPN %s: %q", proto, b)
		}
	}
}
