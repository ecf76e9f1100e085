// A host-process build of sigs.k8s.io/kube-network-policies, the NetworkPolicy
// implementation kind ships: the same controller as its cmd/main.go (NetworkPolicy
// only, no AdminNetworkPolicy), but it takes a kubeconfig instead of in-cluster
// credentials, since the real node runs it as a plain process next to the kubelet.
// It also stops on SIGTERM (hack/lib.sh's stop) and has --cleanup, which removes its
// nftables table for hack/real-node.sh down after a crash.
//
// The controller decides every new connection in userspace, from the packets an
// NFQUEUE hands it. It steers them there with an nftables `queue` rule; a kernel
// without nft_queue refuses that rule (and the controller logs it), and then
// hack/real-node.sh steers the same packets with iptables' NFQUEUE target instead.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/kube-network-policies/pkg/networkpolicy"

	"github.com/google/nftables"
)

// The upstream default; hack/real-node.sh down deletes the table by this name.
const tableName = "kube-network-policies"

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the controller's identity")
	nodeName := flag.String("hostname-override", "", "the Node whose pods this process guards")
	queueID := flag.Int("nfqueue-id", 100, "number of the nfqueue used")
	metrics := flag.String("metrics-bind-address", "127.0.0.1:9080", "address of /metrics")
	cleanup := flag.Bool("cleanup", false, "delete the nftables table and exit")
	klog.InitFlags(nil)
	flag.Parse()
	if *cleanup {
		os.Exit(deleteTable())
	}
	os.Exit(run(*kubeconfig, *nodeName, *queueID, *metrics))
}

func run(kubeconfig, nodeName string, queueID int, metrics string) int {
	if kubeconfig == "" || nodeName == "" {
		fmt.Fprintln(os.Stderr, "--kubeconfig and --hostname-override are required")
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, unix.SIGTERM)
	defer cancel()
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		klog.ErrorS(err, "reading the kubeconfig")
		return 1
	}
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		klog.ErrorS(err, "creating the client")
		return 1
	}
	factory := informers.NewSharedInformerFactory(clientset, 0)
	controller, err := networkpolicy.NewController(
		clientset,
		factory.Networking().V1().NetworkPolicies(),
		factory.Core().V1().Namespaces(),
		factory.Core().V1().Pods(),
		nil, nil, nil, nil,
		networkpolicy.Config{
			QueueID:     queueID,
			NodeName:    nodeName,
			NFTableName: tableName,
			// The DNS conntrack race it works around is fixed in the kernels since 6.12.
			NetfilterBug1766Fix: false,
			// Left on although containerd 1.6 has no NRI socket (the plugin only logs that it
			// cannot connect, and the apiserver's pod IPs are used): v0.8.0 asks the NRI
			// plugin about every IP the apiserver does not know, and with NRI disabled that
			// plugin is nil, so the first packet from the host or a new pod panics.
			NRIdisabled: false,
		},
	)
	if err != nil {
		klog.ErrorS(err, "creating the network policy controller")
		return 1
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	go func() { klog.ErrorS(http.ListenAndServe(metrics, mux), "metrics server") }()
	done := make(chan error, 1)
	go func() { done <- controller.Run(ctx) }()
	factory.Start(ctx.Done())
	select {
	case err = <-done: // before a signal, Run returns only on failure (nfqueue, cache sync)
		if ctx.Err() != nil {
			return 0
		}
		klog.ErrorS(err, "the controller stopped")
		return 1
	case <-ctx.Done():
	}
	// Run removes its nftables table on the way out; wait for that, within stop's 5 s.
	select {
	case <-done:
	case <-time.After(4 * time.Second):
		return deleteTable()
	}
	return 0
}

func deleteTable() int {
	conn, err := nftables.New()
	if err != nil {
		fmt.Fprintln(os.Stderr, "nftables:", err)
		return 1
	}
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listing nftables tables:", err)
		return 1
	}
	for _, table := range tables {
		if table.Name == tableName {
			conn.DelTable(table)
		}
	}
	if err := conn.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "deleting the nftables table:", err)
		return 1
	}
	return 0
}
