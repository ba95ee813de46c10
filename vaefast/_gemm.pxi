# Binding of the gemm part: declarations and wrappers go here.
