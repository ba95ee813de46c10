# Binding of the elementwise part: declarations and wrappers go here.
