package pkitest

import (
	"io"
	"strings"
	"sync/atomic"
)

// CountingReader is a request body that counts the bytes read of it: what
// an HTTP client has sent of it. The tests of "Expect: 100-continue" use
// it to see that a body refused by its announced length was not sent.
type CountingReader struct {
	r io.Reader
	n atomic.Int64
}

// NewCountingReader reads body.
func NewCountingReader(body string) *CountingReader {
	return &CountingReader{r: strings.NewReader(body)}
}

func (c *CountingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Sent returns the bytes read so far.
func (c *CountingReader) Sent() int64 { return c.n.Load() }
