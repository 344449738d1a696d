package redact

import (
	"slices"
	"strings"
	"testing"
)

func TestDefaults(t *testing.T) {
	r, err := New(nil, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want []string }{
		{[]string{"/app", "--port=80", "-v"}, []string{"/app", "--port=80", "-v"}},
		{[]string{"/app", "--db-password=hunter2"}, []string{"/app", "--db-password=*****"}},
		{[]string{"/app", "--password", "hunter2", "--port", "80"}, []string{"/app", "--password", "*****", "--port", "80"}},
		{[]string{"/app", "--api-key", "--verbose"}, []string{"/app", "--api-key", "--verbose"}},
		{[]string{"env", "GITHUB_TOKEN=ghp_x", "AWS_SECRET_ACCESS_KEY=abc", "HOME=/root", "app"}, []string{"env", "GITHUB_TOKEN=*****", "AWS_SECRET_ACCESS_KEY=*****", "HOME=/root", "app"}},
		{[]string{"java", "-Dspring.datasource.password=pw", "-jar", "app.jar"}, []string{"java", "-Dspring.datasource.password=*****", "-jar", "app.jar"}},
		{[]string{"psql", "postgres://admin:s3cret@db:5432/app"}, []string{"psql", "postgres://admin:*****@db:5432/app"}},
		{[]string{"curl", "-H", "Authorization: Bearer abc.def", "https://api"}, []string{"curl", "-H", "Authorization: *****", "https://api"}},
		{[]string{"git", "clone", "https://github.com/x/y"}, []string{"git", "clone", "https://github.com/x/y"}},
	} {
		if got := r.Args(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("Args(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPatterns(t *testing.T) {
	r, err := New([]string{`--license=(\S+)`, `sk_live_([a-z0-9]+)`}, false)
	if err != nil {
		t.Fatal(err)
	}
	in := []string{"app", "--license=ABC-123", "--key=sk_live_abc123", "--password=kept"}
	want := []string{"app", "--license=*****", "--key=sk_live_*****", "--password=kept"}
	if got := r.Args(in); !slices.Equal(got, want) {
		t.Errorf("Args = %q, want %q", got, want)
	}
	if in[1] != "--license=ABC-123" {
		t.Error("Args changed its argument")
	}
	var none *Redactor
	if got := none.Args(in); !slices.Equal(got, in) {
		t.Errorf("a nil Redactor changed %q", got)
	}
}

func TestBadPatterns(t *testing.T) {
	for pattern, want := range map[string]string{
		`--key=\S+`: `--redact "--key=\\S+": the pattern has no capture group`,
		`(`:         `--redact "(": error parsing regexp`,
	} {
		if _, err := New([]string{pattern}, true); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("New(%q) = %v, want %q", pattern, err, want)
		}
	}
}
