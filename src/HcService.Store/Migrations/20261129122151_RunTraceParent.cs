using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace HcService.Store.Migrations
{
    /// <inheritdoc />
    public partial class RunTraceParent : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "TraceParent",
                schema: "hc",
                table: "runs",
                type: "text",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "TraceParent",
                schema: "hc",
                table: "runs");
        }
    }
}
