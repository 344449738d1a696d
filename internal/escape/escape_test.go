package escape

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/usr/bin/nginx", "/usr/bin/nginx"},
		{"/opt/café/naïve server", "/opt/café/naïve server"},
		{"\x1b[2J\x1b[Hfake row", `\x1b[2J\x1b[Hfake row`},
		{"a\r\nb\tc", `a\r\nb\tc`},
		{"bin-\xff\xfe", `bin-\xff\xfe`},
		{"bin-\xfe\xff", `bin-\xfe\xff`},
		{`C:\x1b`, `C:\x1b`},
		{"evil\u202egnp.exe", `evil\u202egnp.exe`},
		{"\u2028\u2066x\u2069", `\u2028\u2066x\u2069`},
		{"\x7f\u0085", `\x7f\u0085`},
		{"\U000e0041tag", `\U000e0041tag`},
		{"", ""},
	} {
		if got := Text(tc.in); got != tc.want {
			t.Errorf("Text(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/usr/bin/nginx", "/usr/bin/nginx"},
		{"bin-\xff", `bin-\xff`},
		{`a\b`, `a\\b`},
		{"a\tb", `a\tb`},
	} {
		if got := Name(tc.in); got != tc.want {
			t.Errorf("Name(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Different names never become one.
func TestNameInjective(t *testing.T) {
	names := []string{"bin-\xff", "bin-\xfe", `bin-\xff`, "bin-\u00ff", "bin-\uFFFD", "a\nb", `a\nb`, "a\\\nb"}
	seen := map[string]string{}
	for _, n := range names {
		e := Name(n)
		if other, ok := seen[e]; ok {
			t.Errorf("%q and %q both print as %q", n, other, e)
		}
		seen[e] = n
	}
}

func TestMarkdownCode(t *testing.T) {
	for _, tc := range []struct{ in, code, cell string }{
		{"web", "`web`", "`web`"},
		{"a`b", "``a`b``", "``a`b``"},
		{"`x`", "`` `x` ``", "`` `x` ``"},
		{"[x](https://evil) ![i](http://e/i.png)", "`[x](https://evil) ![i](http://e/i.png)`", "`[x](https://evil) ![i](http://e/i.png)`"},
		{"a|b", "`a|b`", "`a\\|b`"},
		{"# head\n<img src=x>", "`# head\\n<img src=x>`", "`# head\\n<img src=x>`"},
		{" x", "`  x `", "`  x `"},
		{"  ", "`\\x20\\x20`", "`\\x20\\x20`"},
		{"", `""`, `""`},
	} {
		if got := MarkdownCode(tc.in); got != tc.code {
			t.Errorf("MarkdownCode(%q) = %q, want %q", tc.in, got, tc.code)
		}
		if got := MarkdownCell(tc.in); got != tc.cell {
			t.Errorf("MarkdownCell(%q) = %q, want %q", tc.in, got, tc.cell)
		}
	}
}

func FuzzText(f *testing.F) {
	for _, s := range []string{"/bin/sh", "\x1b[31m", "bin-\xff", "\u202e", `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := Text(s)
		if !utf8.ValidString(Name(s)) {
			t.Fatalf("Name(%q) = %q is not UTF-8", s, Name(s))
		}
		for _, r := range e {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0xfffd && !strings.ContainsRune(s, 0xfffd) {
				t.Fatalf("Text(%q) = %q keeps %U", s, e, r)
			}
		}
	})
}

func TestWriter(t *testing.T) {
	var b strings.Builder
	w := NewWriter(&b)
	msg := "capprof: warning: container \"a\\b\"\tnot recorded: /app/\x1b]0;pwned\x07\u202e\xff\n"
	if n, err := w.Write([]byte(msg)); err != nil || n != len(msg) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if want := "capprof: warning: container \"a\\b\"\tnot recorded: /app/\\x1b]0;pwned\\a\\u202e\\xff\n"; b.String() != want {
		t.Errorf("wrote %q, want %q", b.String(), want)
	}
	if w.Raw() != &b {
		t.Error("Raw is not the writer underneath")
	}
}
