// Command cachekit-example uses the Go binding from the command line: one process sets, another
// gets.
//
//	cachekit-example [-socket PATH] [-ns NAMESPACE] set KEY VALUE [-ttl 60s] [-grace 10s] [-tag T]...
//	cachekit-example [-socket PATH] [-ns NAMESPACE] get KEY        prints the value; exit 1 on a miss
//	cachekit-example [-socket PATH] [-ns NAMESPACE] del KEY        exit 1 if it was not there
//	cachekit-example [-socket PATH] [-ns NAMESPACE] invalidate TAG...
//	cachekit-example [-socket PATH] [-ns NAMESPACE] clear
//	cachekit-example [-socket PATH] stats
//
// Without -socket, the daemon is found from CACHEKIT_SOCKET / CACHEKIT_INSTANCE, as in C.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"cachekit.local/cachekit"
)

type tagList []string

func (t *tagList) String() string     { return strings.Join(*t, ",") }
func (t *tagList) Set(s string) error { *t = append(*t, s); return nil }

func main() {
	socket := flag.String("socket", "", "cachekitd's socket (default: CACHEKIT_SOCKET, else the instance's)")
	ns := flag.String("ns", "example", "namespace")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: cachekit-example [-socket PATH] [-ns NS] set KEY VALUE [-ttl D] [-grace D] [-tag T]... | get KEY | del KEY | invalidate TAG... | clear | stats")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 1 {
		flag.Usage()
		os.Exit(2)
	}
	c, err := cachekit.Open(cachekit.Options{Socket: *socket, Namespace: *ns})
	if err != nil {
		fatal(err)
	}
	code := run(c, flag.Arg(0), flag.Args()[1:])
	c.Close()
	os.Exit(code)
}

func run(c *cachekit.Client, cmd string, args []string) int {
	switch cmd {
	case "set":
		fs := flag.NewFlagSet("set", flag.ExitOnError)
		ttl := fs.Duration("ttl", 0, "time to live (0: never expires)")
		grace := fs.Duration("grace", 0, "grace period after the TTL")
		var tags tagList
		fs.Var(&tags, "tag", "tag path (repeatable)")
		if len(args) < 2 {
			usage("set KEY VALUE [-ttl D] [-grace D] [-tag T]...")
		}
		fs.Parse(args[2:])
		if err := c.Set([]byte(args[0]), []byte(args[1]), cachekit.SetOptions{TTL: *ttl, Grace: *grace, Tags: tags}); err != nil {
			fatal(err)
		}
	case "get":
		if len(args) != 1 {
			usage("get KEY")
		}
		v, ok, err := c.GetInfo([]byte(args[0]))
		if err != nil {
			fatal(err)
		}
		if !ok {
			fmt.Fprintln(os.Stderr, "miss")
			return 1
		}
		if v.Stale {
			fmt.Fprintf(os.Stderr, "stale since %s: refresh it\n", v.Expires().Format(time.RFC3339))
		}
		fmt.Println(string(v.Bytes))
	case "del":
		if len(args) != 1 {
			usage("del KEY")
		}
		was, err := c.Delete([]byte(args[0]))
		if err != nil {
			fatal(err)
		}
		if !was {
			return 1
		}
	case "invalidate":
		if err := c.Invalidate(args...); err != nil {
			fatal(err)
		}
	case "clear":
		if err := c.Clear(); err != nil {
			fatal(err)
		}
	case "stats":
		st, err := c.Stats()
		if err != nil {
			fatal(err)
		}
		names := make([]string, 0, len(st))
		for n := range st {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Printf("%-40s %d\n", n, st[n])
		}
	default:
		flag.Usage()
		return 2
	}
	return 0
}

func usage(s string) {
	fmt.Fprintln(os.Stderr, "usage: cachekit-example [-socket PATH] [-ns NS]", s)
	os.Exit(2)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, err)
	if errors.Is(err, cachekit.ErrUnavailable) {
		os.Exit(3)
	}
	os.Exit(1)
}
