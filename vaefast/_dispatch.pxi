# Dispatch and threads (csrc/dispatch.c, csrc/threads.c).


_FEATURE_BITS = (
    ("sse2", 0), ("avx", 1), ("avx2", 2), ("fma", 3), ("avx512f", 4),
    ("avx512vl", 5), ("avx512bw", 6), ("avx512dq", 7), ("os_avx", 8),
    ("os_avx512", 9), ("neon", 10), ("avx512_bf16", 11), ("bf16", 12),
    ("amx_tile", 13), ("amx_bf16", 14), ("fast_subnormals", 15),
)

ISA_NAMES = tuple(vf_isa_name(i).decode() for i in range(VF_ISA_COUNT))


def cpu_features():
    """Dict of CPU feature name -> bool, as detected at run time."""
    cdef uint32_t f = vf_cpu_features()
    return {name: bool(f & (1u << bit)) for name, bit in _FEATURE_BITS}


def compiled_isas():
    return tuple(n for i, n in enumerate(ISA_NAMES) if vf_isa_compiled(i))


def supported_isas():
    return tuple(n for i, n in enumerate(ISA_NAMES) if vf_isa_supported(i))


def best_isa():
    return ISA_NAMES[vf_isa_best()]


def set_isa(str name):
    """Activate the kernel set `name`; ValueError if unknown or unsupported."""
    if name not in ISA_NAMES:
        raise ValueError(
            f"unknown kernel set {name!r}; expected one of {', '.join(ISA_NAMES)}")
    cdef int isa = ISA_NAMES.index(name)
    if not vf_isa_compiled(isa):
        raise ValueError(f"kernel set {name!r} is not built into this binary "
                         f"(built: {', '.join(compiled_isas())})")
    if vf_set_isa(isa) != VF_OK:
        raise ValueError(f"kernel set {name!r} is not supported by this CPU "
                         f"(supported: {', '.join(supported_isas())})")


def get_isa():
    return ISA_NAMES[vf_get_isa()]


def set_num_threads(int n):
    vf_set_num_threads(n)


def get_num_threads():
    return vf_get_num_threads()


def openmp_version():
    """The build's OpenMP version (_OPENMP, yyyymm), or 0 for a build without
    OpenMP, which runs single-threaded."""
    return vf_openmp_version()


def sched_thread_id():
    """The calling thread's id for sched_waited_ns (Linux: its tid), or 0
    where there is no scheduler probe. Diagnostics of the thread team
    (csrc/team.c: a worker keeps spinning while the caller is preempted)."""
    return vf_os_thread_id()


def sched_waited_ns(int64_t thread_id):
    """Nanoseconds thread `thread_id` of this process has spent runnable but
    waiting for a CPU, or -1 where the OS does not tell (csrc/platform.h)."""
    return vf_os_thread_waited_ns(thread_id)
