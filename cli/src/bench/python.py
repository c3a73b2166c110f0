# The Python side of `ipc-harness bench --python`: the same method as the
# Rust cases (set-up, ready, go, clock from go to the last receive;
# time.monotonic is CLOCK_MONOTONIC, as the Rust side uses).
import multiprocessing as mp, os, sys, time
mp.set_start_method("fork")
now = time.monotonic

def tp_pipe(size, n):
    a, b = mp.Pipe()
    ready, go = mp.Event(), mp.Event()
    def prod():
        msg = b"Z" * size
        ready.set(); go.wait()
        for _ in range(n):
            a.send_bytes(msg)
    p = mp.Process(target=prod); p.start()
    ready.wait()
    t0 = now(); go.set()
    for _ in range(n):
        b.recv_bytes()
    t1 = now(); p.join()
    return t1 - t0

def tp_queue(size, n, P, C, joinable):
    q = mp.JoinableQueue() if joinable else mp.Queue()
    ends, ready, go = mp.SimpleQueue(), mp.Semaphore(0), mp.Event()
    def prod(k):
        msg = b"Z" * size
        ready.release(); go.wait()
        for _ in range(k):
            q.put(msg)
        q.put(None)
    def cons():
        ready.release(); go.wait()
        while True:
            m = q.get()
            if joinable:
                q.task_done()
            if m is None:
                break
        ends.put(now())
    procs = [mp.Process(target=cons) for _ in range(C)]
    procs += [mp.Process(target=prod, args=(n // P,)) for _ in range(P)]
    for p in procs: p.start()
    for _ in procs: ready.acquire()
    t0 = now(); go.set()
    t1 = max(ends.get() for _ in range(C))
    for p in procs: p.join()
    return t1 - t0

WARM = 100
def lat(kind, n, cpu):
    if cpu >= 0:
        os.sched_setaffinity(0, {cpu})
    if kind == "pipe":
        a, b = mp.Pipe()
        send, recv = a.send_bytes, a.recv_bytes
        def echo():
            for _ in range(n + WARM):
                b.send_bytes(b.recv_bytes())
    else:
        q1, q2 = mp.Queue(), mp.Queue()
        send, recv = q1.put, q2.get
        def echo():
            for _ in range(n + WARM):
                q2.put(q1.get())
    p = mp.Process(target=echo); p.start()
    msg = b"Z" * 64
    clock = time.perf_counter_ns
    rtts = []
    for i in range(n + WARM):
        t = clock(); send(msg); recv()
        if i >= WARM:
            rtts.append(clock() - t)
    p.join()
    rtts.sort()
    return rtts[len(rtts) // 2] / 1e3, rtts[min(len(rtts) - 1, len(rtts) * 99 // 100)] / 1e3

if __name__ == "__main__":
    what = sys.argv[1]
    if what == "pipe":
        print(tp_pipe(int(sys.argv[2]), int(sys.argv[3])))
    elif what in ("queue", "joinable"):
        size, n, P, C = map(int, sys.argv[2:6])
        print(tp_queue(size, n, P, C, what == "joinable"))
    else:
        print(*lat(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
