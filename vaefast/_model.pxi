# Binding of the model part: declarations and wrappers go here.
