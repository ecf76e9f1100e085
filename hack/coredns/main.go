// A small CoreDNS build for the local cluster: only the plugins the in-cluster
// Corefile (coredns.yaml) uses, instead of CoreDNS's full list, which pulls in
// every cloud SDK. It does what CoreDNS's generated core/plugin/zplugin.go and
// core/dnsserver/zdirectives.go do, for this subset.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/template"
)

// directives is the execution order of the plugins above: a subsequence of
// CoreDNS's plugin.cfg, whose order must be kept (each plugin sees a query
// before the ones listed after it). A directive missing here is rejected in
// a Corefile as unknown.
var directives = []string{
	"reload",
	"bind",
	"ready",
	"health",
	"prometheus", // package plugin/metrics
	"errors",
	"log",
	"loadbalance",
	"cache",
	"template",
	"kubernetes",
	"loop",
	"forward",
}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
