"""Check the code the compiler emitted for the NEON GEMM micro-kernels.

Speed cannot be measured under emulation, so the evidence is the k loops
of the micro-kernels: for the full 8×12 tile (isa/gemm_config.h), per k,
24 FMAs by lane, two loads of A, three of B, and loop control. This reads
the disassembly of the cross-built object of the micro-kernel entry point
(`aarch64-linux-gnu-objdump -d` of gemm_ukr.c.o, where every tile kernel
is instantiated) and finds, in every function, every single-block loop (a
backward branch and the instructions it jumps back over) that holds an
FMA: those are the k loops of the tiles (full tiles, one copy per
epilogue; edge tiles; wide kernels), all of which run. It fails when

  * any such loop touches the stack (a spilled accumulator or operand),
  * a full-tile loop (TILE_FMAS FMAs) has fewer than MIN_DENSITY FMAs per
    instruction,
  * the full tile's column kernel FUNC has no full-tile loop at all.

A compiler or code change that breaks the register tile fails this loudly.

usage: python fma_density.py OBJDUMP OBJECT [FUNC]
"""
import re
import subprocess
import sys
from collections import Counter

TILE_FMAS = 8 * 12 // 4  # MR × NR / 4 lanes: one fmla per accumulator per k
MIN_DENSITY = 0.75

LINE = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$")
FUNC = re.compile(r"^[0-9a-f]+ <(.+)>:$")
BRANCH = re.compile(r"^(b|b\.\w+|cbz|cbnz|tbz|tbnz)$")


def functions(disassembly):
    """{name: [(address, mnemonic, operands)]} of an objdump -d listing."""
    out, current = {}, None
    for line in disassembly.splitlines():
        m = FUNC.match(line)
        if m:
            current = out.setdefault(m.group(1), [])
            continue
        m = LINE.match(line)
        if m and current is not None:
            current.append((int(m.group(1), 16), m.group(2), m.group(3)))
    return out


def branch_target(mnemonic, operands):
    if not BRANCH.match(mnemonic):
        return None
    m = re.search(r"\b([0-9a-f]+) <", operands)
    return int(m.group(1), 16) if m else None


def loops(code):
    """Bodies (lists of instructions) of the single-block loops in code: a
    backward branch and what it jumps back over, with no other branch."""
    for i, (addr, mnemonic, operands) in enumerate(code):
        target = branch_target(mnemonic, operands)
        if target is not None and target <= addr:
            body = [ins for ins in code[: i + 1] if ins[0] >= target]
            if not any(BRANCH.match(m) for _, m, _ in body[:-1]):
                yield body


def is_fma(mnemonic):
    return mnemonic in ("fmla", "fmadd")


def touches_stack(operands):
    return re.search(r"\[sp\b", operands) is not None


def k_loops(code):
    """(fmas, instructions, stack accesses, address) of every loop with an FMA."""
    for body in loops(code):
        fmas = sum(is_fma(m) for _, m, _ in body)
        if fmas:
            yield fmas, len(body), sum(touches_stack(o) for _, _, o in body), body[0][0]


def check(listing, func):
    """Report lines and failure lines for one disassembly listing."""
    report, failures = [], []
    found_tile = False
    for name, code in functions(listing).items():
        shapes = Counter()
        for fmas, n, spills, addr in k_loops(code):
            shapes[(fmas, n, spills)] += 1
            if spills:
                failures.append(f"{name}: k loop at {addr:#x} ({fmas} FMAs in {n} "
                                f"instructions) has {spills} stack accesses (spills)")
            if fmas == TILE_FMAS and fmas / n < MIN_DENSITY:
                failures.append(f"{name}: full-tile k loop at {addr:#x} has {fmas / n:.0%} "
                                f"FMAs, needs >= {MIN_DENSITY:.0%}")
            found_tile |= name == func and fmas == TILE_FMAS
        if shapes:
            loops_txt = ", ".join(
                f"{c}x [{f} FMAs / {n} instr = {f / n:.0%}, {s} stack]"
                for (f, n, s), c in sorted(shapes.items(), reverse=True))
            report.append(f"{name}: {loops_txt}")
    if not found_tile:
        failures.append(f"no single-block loop in {func} with {TILE_FMAS} FMAs "
                        "(the 8x12 tile's k loop)")
    return report, failures


def main():
    objdump, obj = sys.argv[1], sys.argv[2]
    # the full-tile column kernel without epilogue steps (isa/gemm_ukernel.h)
    func = sys.argv[3] if len(sys.argv) > 3 else "vf_full_column_0"
    listing = subprocess.run([objdump, "-d", "--no-show-raw-insn", obj], check=True,
                             capture_output=True, text=True).stdout
    report, failures = check(listing, func)
    for line in report:
        print(f"fma_density: {line}")
    for line in failures:
        print(f"fma_density: FAIL: {line}")
    if not failures:
        print(f"fma_density: OK: {sum(1 for _ in report)} functions with k loops, no spill, "
              f"full tiles >= {MIN_DENSITY:.0%} FMAs")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
