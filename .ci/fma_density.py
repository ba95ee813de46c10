"""Check the code the compiler emitted for the NEON GEMM micro-kernel.

Speed cannot be measured under emulation, so the evidence is the inner K
loop of the full 8×12 tile (isa/gemm_config.h): per k, 24 FMAs by lane,
two loads of A, three of B, and loop control. This reads the disassembly
of the cross-built object (`aarch64-linux-gnu-objdump -d`) of function
FUNC, finds every single-block loop (a backward branch and the
instructions it jumps back over) holding TILE_FMAS FMAs, and requires the densest of them (the packed-A
loop) to have at least MIN_DENSITY FMAs per instruction and not to touch
the stack (a spilled accumulator). A compiler or code change that breaks the register
tile fails this loudly.

usage: python fma_density.py OBJDUMP OBJECT [FUNC]
"""
import re
import subprocess
import sys

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


def main():
    objdump, obj = sys.argv[1], sys.argv[2]
    # the full-tile column kernel without epilogue steps; its 31 siblings (one per
    # epilogue, isa/gemm_ukernel.h) share the k loop
    func = sys.argv[3] if len(sys.argv) > 3 else "vf_full_column_0"
    listing = subprocess.run([objdump, "-d", "--no-show-raw-insn", obj], check=True,
                             capture_output=True, text=True).stdout
    code = functions(listing).get(func)
    if not code:
        sys.exit(f"fma_density: no function {func!r} in {obj}")
    tiles = [body for body in loops(code)
             if sum(is_fma(m) for _, m, _ in body) == TILE_FMAS]
    if not tiles:
        sys.exit(f"fma_density: FAIL: no single-block loop in {func} with {TILE_FMAS} FMAs "
                 "(the 8x12 tile's k loop)")
    def density(body):
        return sum(is_fma(m) for _, m, _ in body) / len(body)

    for body in tiles:
        fmas = sum(is_fma(m) for _, m, _ in body)
        spills = sum(touches_stack(o) for _, _, o in body)
        others = sorted({m for _, m, _ in body if not is_fma(m)})
        print(f"fma_density: {func} k loop at {body[0][0]:#x}: {fmas} FMAs in {len(body)} "
              f"instructions ({density(body):.0%}, {len(body) / fmas:.2f} instructions per "
              f"FMA, {spills} stack accesses); others: {' '.join(others)}")
    # The packed-A loop is the densest; the A-in-place copies (narrow
    # products) gather A by rows and are reported only.
    packed = max(tiles, key=density)
    bad = False
    if density(packed) < MIN_DENSITY:
        print(f"fma_density: FAIL: the densest tile loop has {density(packed):.0%} FMAs, "
              f"needs >= {MIN_DENSITY:.0%}")
        bad = True
    if any(touches_stack(o) for _, _, o in packed):
        print("fma_density: FAIL: the densest tile loop touches the stack (spills)")
        bad = True
    if not bad:
        print(f"fma_density: OK: packed-A k loop at {packed[0][0]:#x}, "
              f"{density(packed):.0%} FMAs, no stack access")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
