package strictjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// CheckText refuses, before the body is decoded, the two kinds of
// valid JSON that encoding/json reads otherwise than the caller meant:
// one nested deeper than its scanner takes, which it calls malformed
// (the caller looks for a syntax error that is not there), and a string
// holding a lone UTF-16 surrogate escape ("\ud800"), which it turns into
// U+FFFD without a word (a challenge would be bound to a subject the
// caller never sent). A body that is not JSON is left to decode, which
// says where it breaks.
func CheckText(body []byte) error {
	type container struct{ object, wantKey bool }
	var open []container
	var field string // the top object's key whose value is being read
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return nil // the end, or no JSON: decode answers that
		}
		isKey := false
		if n := len(open); n > 0 && open[n-1].object && tok != json.Delim('}') {
			isKey = open[n-1].wantKey
			open[n-1].wantKey = !isKey
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(open) == MaxDepth {
				return ErrTooDeep
			}
			open = append(open, container{object: tok == json.Delim('{'), wantKey: true})
			continue
		case json.Delim('}'), json.Delim(']'):
			if open = open[:len(open)-1]; len(open) == 0 {
				return nil // the body's object; what follows is decode's
			}
			continue
		}
		s, ok := tok.(string)
		if !ok {
			continue
		}
		if isKey && len(open) == 1 {
			field = s
		}
		if esc := loneSurrogate(body[start:dec.InputOffset()]); esc != "" {
			where := fmt.Sprintf("field %q", field)
			if isKey && len(open) == 1 {
				where = "a field name"
			}
			return fmt.Errorf(`%s: the escape %s is half of a UTF-16 surrogate pair, alone, and stands for no character: send the text as UTF-8, or a character beyond U+FFFF as a pair of escapes (\ud83d\ude00)`, where, esc)
		}
	}
}

// loneSurrogate returns the first \uXXXX escape in raw (the JSON text of
// one string, with what went before it since the last token) that is a
// UTF-16 surrogate not paired, high then low; "" when there is none.
func loneSurrogate(raw []byte) string {
	escape := func(i int) (rune, bool) { // the \uXXXX at raw[i:]
		if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
			return 0, false
		}
		n, err := strconv.ParseUint(string(raw[i+2:i+6]), 16, 32)
		return rune(n), err == nil
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		r, ok := escape(i)
		if !ok {
			i++ // an escape of one character, such as \\ or \"
			continue
		}
		switch {
		case r >= 0xD800 && r < 0xDC00:
			if low, ok := escape(i + 6); ok && low >= 0xDC00 && low < 0xE000 {
				i += 11
				continue
			}
			return string(raw[i : i+6])
		case r >= 0xDC00 && r < 0xE000:
			return string(raw[i : i+6])
		}
		i += 5
	}
	return ""
}
