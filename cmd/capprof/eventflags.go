//go:build linux && amd64

package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/capprof/capprof/events"
	"github.com/capprof/capprof/internal/redact"
	"github.com/capprof/capprof/recorder"
)

// eventsFlags are the live-event flags of record and agent: --events and
// the flags that shape what it writes.
type eventsFlags struct {
	output, format string
	filter         cli.StringSlice
	rateLimit      time.Duration
}

// eventsShapers are the flags that mean nothing without --events.
var eventsShapers = []string{"events-format", "events-filter", "events-rate-limit"}

// flags are the flags, --events described by eventsUsage.
func (f *eventsFlags) flags(eventsUsage string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "events", Destination: &f.output, Usage: eventsUsage, Category: "Events"},
		&cli.StringFlag{Name: "events-format", Value: "json", Destination: &f.format, Usage: "events as JSON lines (Tetragon's field names) or compact lines: " + strings.Join(events.Formats, ", "), Category: "Events"},
		&cli.StringSliceFlag{Name: "events-filter", Destination: &f.filter, Usage: "write only events matching `KEY=VALUE` (type=exec|exit|cap|creds, pod=[NAMESPACE/]NAME, container=NAME, cap=NAME, verdict=allowed|denied); repeat a key for either value", Category: "Events"},
		&cli.DurationFlag{Name: "events-rate-limit", Value: time.Second, Destination: &f.rateLimit, Usage: "at most one capability-check event per process, capability and verdict per this interval; the rest are counted in the next (0: every check)", Category: "Events"},
	}
}

// config reads the flags; nil when no events are asked for. A flag of
// eventsShapers or of also without --events is refused.
func (f *eventsFlags) config(c *cli.Context, redactor *redact.Redactor, also ...string) (*recorder.EventsConfig, error) {
	if !c.IsSet("events") {
		for _, name := range slices.Concat(eventsShapers, also) {
			if c.IsSet(name) {
				return nil, fmt.Errorf("--%s shapes live events: give --events FILE (or - for stdout) too", name)
			}
		}
		return nil, nil
	}
	if f.output == "" {
		return nil, errors.New("--events: give a file, or - for stdout")
	}
	if err := oneOf(c, "events-format", events.Formats); err != nil {
		return nil, err
	}
	if f.rateLimit < 0 {
		return nil, fmt.Errorf("--events-rate-limit %s: must not be negative", f.rateLimit)
	}
	filter, err := events.ParseFilter(f.filter.Value())
	if err != nil {
		return nil, fmt.Errorf("--events-filter %w", err)
	}
	return &recorder.EventsConfig{Output: f.output, Stdout: c.App.Writer, Format: f.format,
		Filter: filter, RateLimit: f.rateLimit, Redact: redactor}, nil
}
