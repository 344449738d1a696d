// Command capprof records which Linux capabilities a workload really uses,
// with eBPF, and turns that into the smallest securityContext that works.
package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/capprof/capprof/internal/escape"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exitCode carries a status to main without printing anything: record
// exits with its command's code.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// statusError ends capprof with code after printing err as usual: a CI
// condition that holds (1) or, for diff, bad input (2).
type statusError struct {
	code int
	err  error
}

func (e statusError) Error() string { return e.err.Error() }

// signalled is a recording or verification a signal cut short
// (recorder.QuitError): capprof exits with 128+N.
type signalled interface {
	error
	ExitStatus() int
}

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// run executes one capprof invocation and returns its exit status; errors
// are printed as one line on stderr.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// capprof's messages name what workloads and profiles name: escaped.
	stderr = escape.NewWriter(stderr)
	app := newApp(stdin, stdout, stderr)
	if len(args) > 0 && isKubectlPlugin(args[0]) {
		asKubectlPlugin(app)
	}
	err := app.Run(flagsFirst(app, args))
	var code exitCode
	var status statusError
	var quit signalled
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code)
	case errors.As(err, &quit):
		fmt.Fprintf(stderr, "capprof: %s\n", err)
		return quit.ExitStatus()
	case errors.As(err, &status):
		fmt.Fprintf(stderr, "capprof: %s\n", status.err)
		return status.code
	default:
		fmt.Fprintf(stderr, "capprof: %s\n", err)
		return failureStatus(args, err)
	}
}

// Exit statuses, the same for every verb: 0 done; 1 a condition asked for
// holds (--fail-on; verify: the advice failed); 2 usage or bad input, or
// another failure of capprof's. record and verify pass a command's status
// through, so their own failures are 125, and a command that cannot be run
// 126 (not executable) or 127 (not found), as timeout(1) and docker run
// say.
const (
	badInputStatus       = 2
	ownFailureStatus     = 125
	notExecutableStatus  = 126
	commandMissingStatus = 127
)

// notStarted is a command that could not be started (recorder.StartError).
type notStarted interface {
	error
	NotStarted()
}

// failureStatus is the exit status of a failed invocation.
func failureStatus(args []string, err error) int {
	if len(args) < 2 || !runsCommand[args[1]] {
		return badInputStatus
	}
	var start notStarted
	switch {
	case !errors.As(err, &start):
		return ownFailureStatus
	case errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist):
		return commandMissingStatus
	case errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.ENOEXEC):
		return notExecutableStatus
	}
	return ownFailureStatus
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:            "capprof",
		Usage:           "record the Linux capabilities a workload uses and derive the smallest securityContext it needs; verify proves it",
		Version:         version,
		Reader:          stdin,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		// Errors are printed once, by main; cli must not exit by itself.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   usageError,
		Commands:       []*cli.Command{recordCommand(), verifyCommand(), analyzeCommand(), patchCommand(), diffCommand(), exportCommand(), probesCommand(), agentCommand(), controllerCommand()},
	}
}

// pluginName is the file name kubectl finds capprof by: installed as
// kubectl-capprof on the PATH (krew does that), `kubectl capprof VERB ...`
// runs it with argv[0] its path and the arguments after "capprof".
const pluginName = "kubectl-capprof"

// isKubectlPlugin says whether capprof runs as kubectl's plugin: named
// kubectl-capprof (kubectl-capprof.exe on Windows).
func isKubectlPlugin(argv0 string) bool {
	return strings.TrimSuffix(filepath.Base(argv0), ".exe") == pluginName
}

// asKubectlPlugin makes capprof behave as `kubectl capprof`: its help and
// messages name it so, and its verbs work on the cluster by default, as
// kubectl's do: record creates a CapabilityRecording (--cluster), analyze,
// patch and diff read CapabilityProfiles (--from-cluster). Files are still
// read with --from-cluster=false, and recorded with --cluster=false.
// kubectl's own flags (-n/--namespace, --kubeconfig, --context) are
// capprof's cluster flags already.
func asKubectlPlugin(app *cli.App) {
	app.Name, app.HelpName = "kubectl capprof", "kubectl capprof"
	for _, cmd := range app.Commands {
		for _, f := range cmd.Flags {
			if b, ok := f.(*cli.BoolFlag); ok && (b.Name == "cluster" || b.Name == "from-cluster") {
				b.Value = true
			}
		}
	}
}

// flagsFirst lets flags follow positional arguments, as in
// "capprof analyze web.json -o yaml": urfave/cli stops parsing flags at the
// first positional argument, so the subcommand's flags (with their values)
// are moved in front of its positional arguments. Everything after "--" is
// left alone: it is the recorded command's own.
func flagsFirst(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	cmd := app.Command(args[1])
	if cmd == nil {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, name := range f.Names() {
			takesValue[name] = !isBool
		}
	}
	var flags, positional []string
	rest := args[2:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			positional = append(positional, rest[i:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if !strings.Contains(name, "=") && takesValue[name] && i+1 < len(rest) {
			i++
			flags = append(flags, rest[i])
		}
	}
	out := append([]string{args[0], args[1]}, flags...)
	if keepsSeparator[cmd.Name] {
		// The flag parser takes this "--", so the user's stays among the
		// arguments and tells what comes before it from the command.
		out = append(out, "--")
	}
	return append(out, positional...)
}

// runsCommand are the commands that run a command given after "--".
var runsCommand = map[string]bool{"record": true, "verify": true}

// keepsSeparator are the commands whose arguments keep their "--": verify
// takes a profile before it and a command after.
var keepsSeparator = map[string]bool{"verify": true}

// usageError keeps a usage mistake to one line on stderr instead of the
// help text on stdout.
func usageError(c *cli.Context, err error, _ bool) error {
	name := c.App.Name
	if c.Command != nil && c.Command.Name != "" {
		name += " " + c.Command.Name
	}
	if c.Command != nil && runsCommand[c.Command.Name] && strings.Contains(err.Error(), "flag provided but not defined") {
		// record -o x ls -la: -la is the command's.
		return fmt.Errorf("%w: a command with flags of its own goes after --: %s [FLAGS] -- COMMAND [ARGS...]", err, name)
	}
	return fmt.Errorf("%w (see %s --help)", err, name)
}

// oneOf checks a flag's value against its valid values; a flag without a
// default that was not given is fine.
func oneOf(c *cli.Context, flag string, valid []string) error {
	if v := c.String(flag); !slices.Contains(valid, v) && (v != "" || c.IsSet(flag)) {
		return fmt.Errorf("--%s %q: must be one of %s", flag, v, strings.Join(valid, ", "))
	}
	return nil
}
