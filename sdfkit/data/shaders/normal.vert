#version 330 core
layout(location = 0) in vec3 position;
layout(location = NORMAL_LOC) in vec3 normal;
layout(location = INST_M_LOC) in mat4 inst_m;
uniform mat4 M;
uniform mat4 V;
uniform mat4 P;
out vec3 frag_position;
out vec3 frag_normal;
void main()
{
    mat4 model = M * inst_m;
    gl_Position = P * V * model * vec4(position, 1.0);
    frag_position = vec3(model * vec4(position, 1.0));
    frag_normal = vec3(transpose(inverse(model)) * vec4(normal, 0.0));
}
