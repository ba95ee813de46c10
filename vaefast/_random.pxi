# Binding of the random part: declarations and wrappers go here.
